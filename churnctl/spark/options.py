"""Where Spark runs: the options every Spark-backed stage takes (features.spark,
validate.gx-spark), declared once."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator


class SparkOptions(BaseModel):
    master: str = Field("local[*]", description="local[*], local[N], spark://HOST:PORT, "
                        "k8s://https://HOST:PORT or yarn")
    shuffle_partitions: int | None = Field(
        None, ge=1, description="[default: 2 x the cores for local masters, 200 on a cluster]")
    driver_memory: str | None = Field(None, pattern=r"^\d+[kmgt]?$",
                                      description="spark.driver.memory, e.g. 4g")
    connect_timeout_seconds: float = Field(
        5.0, gt=0, le=120, description="how long a cluster master may take to answer")
    conf: dict[str, str] = Field(default_factory=dict,
                                 description="more Spark settings, e.g. spark.executor.memory")

    @field_validator("master")
    @classmethod
    def _known_master(cls, value: str) -> str:
        from churnctl.spark.session import master_problem

        problem = master_problem(value)
        if problem:
            raise ValueError(problem)
        return value
