"""Offline outputs of trained runs: top-K recommendation files with manifests
(:mod:`recsys.export.topk`) and bundle completions (:mod:`recsys.export.bundles`)."""
from recsys.export.bundles import complete_bundles, export_completions, read_partial_bundles
from recsys.export.topk import FORMATS, export, export_run, manifest_path, parse_shard, read_user_file

__all__ = ["FORMATS", "complete_bundles", "export", "export_completions", "export_run", "manifest_path",
           "parse_shard", "read_partial_bundles", "read_user_file"]
