"""Split an ingested customer table into the training-set contract the train stage reads.

Writes `train.parquet`, `test.parquet`, `latest.parquet` (every customer, no target: what
batch scoring and serving look up by id), and the `feature_schema` and `table_plan` metadata, the
inferred column plan that the trained model carries so new exports are read the same way.
"""

from __future__ import annotations

from pydantic import Field

from churnctl.stages import Backend, StageContext, StageOutput, StrictOptions


class TableFeaturesOptions(StrictOptions):
    test_fraction: float = Field(0.2, gt=0, lt=1)
    seed: int = 42


class TableFeatures(Backend):
    name = "table"
    stage = "features"
    description = "customer table: split by --time or stratified at random; inferred feature types"
    Options = TableFeaturesOptions
    extra = "sklearn"
    modules = ("pandas", "sklearn")

    def run(self, ctx: StageContext) -> StageOutput:
        import pandas as pd

        from churnctl.domain.table_split import latest_rows, random_split, time_split

        opts: TableFeaturesOptions = ctx.options
        ingest = ctx.inputs["ingest"]
        profile = ingest.meta("table_profile")
        table = pd.read_parquet(ingest.table("customers"))
        target, id_column, time = profile["target"]["column"], profile["id"], profile["time"]
        if time:
            train, test = time_split(table, time, opts.test_fraction)
        else:
            train, test = random_split(table, target, opts.test_fraction, opts.seed)
        train.to_parquet(ctx.out_dir / "train.parquet", index=False)
        test.to_parquet(ctx.out_dir / "test.parquet", index=False)
        latest = latest_rows(table.drop(columns=[target]), id_column, time)
        latest.to_parquet(ctx.out_dir / "latest.parquet", index=False)
        schema = {
            "id": id_column, "time": time, "target": target,
            "numeric": profile["features"]["numeric"],
            "categorical": profile["features"]["categorical"],
            "source": "table", "split": "time" if time else "stratified random",
        }
        return StageOutput(
            tables={name: f"{name}.parquet" for name in ("train", "test", "latest")},
            meta={"feature_schema": schema, "table_plan": profile["plan"]},
            metrics={"train_rows": len(train), "test_rows": len(test),
                     "train_churn_rate": round(float(train[target].mean()), 4)},
            summary={"split": "time" if time else "stratified random",
                     "latest_customers": len(latest)},
        )
