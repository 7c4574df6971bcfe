"""The model code MLflow stores with each churn model ("models from code", MLflow 3).

MLflow copies this file into the logged model and runs it on load; it is never imported by
churnctl itself. Logging code instead of a pickled Python object keeps the model loadable
across versions of the wrapper class; the trained model is the model's `model.skops`
artifact (a skops archive, loaded without running code from it).
"""

import mlflow

from churnctl.tracking.mlflow_model import ChurnPyfunc

mlflow.models.set_model(ChurnPyfunc())
