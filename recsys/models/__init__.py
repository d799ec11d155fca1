"""Models: a registry of ``Recommender`` classes, one file each."""
from recsys.models.base import Recommender
from recsys.models.registry import available_models, get_model_class, register
from recsys.models import bpr, lightgcn, rearm  # noqa: F401  (registration)
from recsys.models import clhe  # noqa: F401  (registration: bundle completion)
from recsys.models import freedom, siger, vbpr  # noqa: F401  (registration: multimodal, issue 4)

__all__ = ["Recommender", "available_models", "get_model_class", "register"]
