"""The file MLflow runs to load the agent model (models from code; see serving/mlflow_model.py).

MLflow executes this file when the logged model is loaded and serves the
object given to ``set_model``. Setting it at import is what models from code
require; the agent opens its database on the first request, not here.
"""

import mlflow

from serving.mlflow_model import ServedMemoryAgent

mlflow.models.set_model(ServedMemoryAgent())
