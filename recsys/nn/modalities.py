"""Choosing which item feature modalities a multimodal model uses, and their mixing weights."""
from __future__ import annotations


def select_modalities(dataset, modalities) -> list[str]:
    """``modalities`` (distinct, validated against the dataset) or, when None, all of its
    modalities sorted; a dataset without features is an error naming the fix."""
    available = sorted(dataset.features)
    if modalities is None and not available:
        raise ValueError(f"this model needs item features, but dataset '{dataset.name}' has none; load a dataset "
                         "with feature files (dataset.modalities) or choose an ID-only model")
    chosen = available if modalities is None else [str(m) for m in modalities]
    missing = [m for m in chosen if m not in dataset.features]
    if missing or not chosen or len(set(chosen)) != len(chosen):
        raise ValueError(
            f"model.modalities {chosen} is not usable: dataset '{dataset.name}' has feature modalities "
            f"{available}; set model.modalities to distinct members of them, or load the features with "
            "dataset.modalities"
        )
    return chosen


def image_weighted(modalities: list[str], image_weight: float) -> dict[str, float]:
    """Mixing weights in the MMRec ``mm_image_weight`` convention, summing to 1.

    With an ``image`` modality and others: image gets ``image_weight``, the others share
    ``1 − image_weight`` equally. Without image, or with image alone: equal weights.
    """
    if not 0.0 <= image_weight <= 1.0:
        raise ValueError(f"model.mm_image_weight must lie in [0, 1], got {image_weight}")
    others = [m for m in modalities if m != "image"]
    if "image" not in modalities or not others:
        return {m: 1.0 / len(modalities) for m in modalities}
    weights = {m: (1.0 - image_weight) / len(others) for m in others}
    weights["image"] = image_weight
    return weights
