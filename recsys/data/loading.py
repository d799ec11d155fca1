"""One entry point from the config's ``dataset`` section to a :class:`Dataset`, plus the
``recsys data info`` / ``recsys data convert`` helpers.

Formats: ``synthetic`` (built-in generator), ``rearm`` (``train/valid/test.npy``), ``mmrec``
(``<name>.inter`` with ``x_label``), ``recbole`` (typed atomic files), and ``auto``, which
picks one of the three file layouts from the folder contents (:func:`detect_format`); the
bundle layouts ``bundle_csv`` and ``clhe`` (:mod:`recsys.data.bundles`) give a ``BundleDataset``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from recsys.data.bundle_csv import read_bundle_csv
from recsys.data.bundles import BUNDLE_FORMATS, BundleDataset
from recsys.data.clhe_format import read_clhe
from recsys.data.dataset import Dataset
from recsys.data.defaults import DATASET_DEFAULTS
from recsys.data.rearm import read_rearm, write_rearm
from recsys.data.synthetic import generate
from recsys.errors import DataError

FILE_FORMATS = ("rearm", "mmrec", "recbole")
FORMATS = ("synthetic", *FILE_FORMATS, "auto", *BUNDLE_FORMATS)


def detect_format(folder: str | Path) -> str:
    """``rearm`` if ``train.npy`` exists; otherwise ``recbole`` or ``mmrec`` from ``.inter`` headers."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"dataset folder {folder} does not exist; set dataset.path to a folder holding "
                        f"train.npy/valid.npy/test.npy or a <name>.inter file")
    if (folder / "train.npy").is_file():
        return "rearm"
    inter = sorted(folder.glob("*.inter"))
    if not inter:
        raise DataError(f"cannot detect the layout of {folder}: no train.npy (rearm) and no *.inter file "
                        f"(mmrec/recbole); set dataset.format explicitly")
    with inter[0].open() as handle:
        header = handle.readline().rstrip("\r\n").split("\t")
    if all(":" in column for column in header):
        return "recbole"
    if "x_label" in header:
        return "mmrec"
    raise DataError(f"cannot detect the layout of {inter[0]}: its header {header} has neither typed "
                    f"RecBole columns (user_id:token ...) nor MMRec's x_label column; set dataset.format")


def load_bundle_dataset(section: Mapping[str, Any]) -> BundleDataset:
    """The bundle dataset a config ``dataset`` section describes (formats in :data:`BUNDLE_FORMATS`)."""
    cfg = {**DATASET_DEFAULTS, **dict(section)}
    fmt = cfg["format"]
    if fmt not in BUNDLE_FORMATS:
        raise DataError(f"dataset.format = '{fmt}' is not a bundle format; use one of {', '.join(BUNDLE_FORMATS)}")
    if not cfg["path"]:
        raise DataError(f"dataset.format = '{fmt}' needs dataset.path (the bundle dataset folder)")
    modalities = None if cfg["modalities"] is None else list(cfg["modalities"])
    if fmt == "bundle_csv":
        return read_bundle_csv(cfg["path"], cfg["name"], modalities, cfg["split_ratios"], cfg["split_seed"])
    return read_clhe(cfg["path"], cfg["name"], modalities)


def load_dataset(section: Mapping[str, Any]) -> Dataset:
    """Build the dataset that a config ``dataset`` section describes (missing keys take defaults).

    ``split_ratios``/``split_order``/``split_seed`` split RecBole ``.inter`` files; the synthetic
    generator uses ``split_ratios`` and ``split_seed`` but always splits by its own timestamps
    (see :mod:`recsys.data.synthetic`); REARM and MMRec files carry their split.
    """
    cfg = {**DATASET_DEFAULTS, **dict(section)}
    fmt = cfg["format"]
    if fmt not in FORMATS:
        raise DataError(f"dataset.format = '{fmt}' is unknown; use one of {', '.join(FORMATS)}")
    if fmt == "synthetic":
        params = {**DATASET_DEFAULTS["synthetic"], **dict(cfg.get("synthetic") or {})}
        ds = generate(**params, split_ratios=cfg["split_ratios"], split_seed=cfg["split_seed"],
                      name=cfg["name"] or "synthetic")
        if cfg["modalities"] is not None:
            unknown = sorted(set(cfg["modalities"]) - set(ds.features))
            if unknown:
                raise DataError(f"dataset.modalities names {unknown}, but the synthetic dataset has "
                                f"{sorted(ds.features)}")
            ds.features = {m: ds.features[m] for m in cfg["modalities"]}
        return ds
    if fmt in BUNDLE_FORMATS:
        return load_bundle_dataset(cfg)
    if not cfg["path"]:
        raise DataError(f"dataset.format = '{fmt}' needs dataset.path (the dataset folder)")
    path = Path(cfg["path"]).expanduser()
    if fmt == "auto":
        fmt = detect_format(path)
    elif not path.is_dir():
        raise DataError(f"dataset folder {path} does not exist; fix dataset.path")
    modalities = None if cfg["modalities"] is None else list(cfg["modalities"])
    if fmt == "rearm":
        return read_rearm(path, modalities, cfg["name"])
    if fmt == "mmrec":
        from recsys.data.mmrec import read_mmrec

        return read_mmrec(path, cfg["name"], modalities)
    from recsys.data.recbole import read_recbole

    return read_recbole(path, cfg["name"], modalities, cfg["split_ratios"], cfg["split_order"], cfg["split_seed"])


def describe(ds: Dataset) -> str:
    """Human-readable summary for ``recsys data info``."""
    s = ds.stats()
    lines = [
        f"dataset       {s['name']}",
        f"users         {s['users']:,}",
        f"items         {s['items']:,}",
        f"interactions  {s['interactions']:,} (train {s['train']:,} / valid {s['valid']:,} / test {s['test']:,})",
        f"sparsity      {s['sparsity']:.6f} (density {1 - s['sparsity']:.2e})",
    ]
    if s["features"]:
        lines += [f"feature       {m}: {shape[0]:,} x {shape[1]}" for m, shape in sorted(s["features"].items())]
    else:
        lines.append("features      none")
    return "\n".join(lines)


def write_dataset(ds: Dataset, folder: str | Path, fmt: str, name: str | None = None) -> None:
    """Write ``ds`` in one of the file layouts (``name`` = file stem for mmrec/recbole)."""
    if fmt == "rearm":
        write_rearm(ds, folder)
    elif fmt == "mmrec":
        from recsys.data.mmrec import write_mmrec

        write_mmrec(ds, folder, name or ds.name)
    elif fmt == "recbole":
        from recsys.data.recbole import write_recbole

        write_recbole(ds, folder, name or ds.name)
    else:
        raise DataError(f"cannot write format '{fmt}'; use one of {', '.join(FILE_FORMATS)}")


def convert(src_path: str | Path, src_format: str, dst_path: str | Path, dst_format: str,
            name: str | None = None) -> Dataset:
    """Read a dataset folder (``src_format`` may be ``auto``) and write it in ``dst_format``.

    ``name`` selects the source ``.inter`` stem (mmrec/recbole) and names the written files;
    the dataset is converted as stored (pre-split RecBole benchmark files keep their split).
    """
    if dst_format not in FILE_FORMATS:
        raise DataError(f"cannot write format '{dst_format}'; use one of {', '.join(FILE_FORMATS)}")
    ds = load_dataset({"format": src_format, "path": str(src_path), "name": name})
    write_dataset(ds, dst_path, dst_format, name)
    return ds
