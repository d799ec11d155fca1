"""The package version (a leaf module, so writers of manifests need not import the package facade)."""
__version__ = "0.1.0"
