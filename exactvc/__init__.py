"""exactvc: version control for whole-slide image annotations.

    import exactvc
    repo = exactvc.Repository.init(path)
"""

from .annotation import Annotation
from .errors import ExactError
from .objects import ImageRecord, Label, LabelSet
from .repo import Repository

__all__ = ["Annotation", "Dataset", "ExactError", "ImageRecord", "Label", "LabelSet", "Repository"]


def __getattr__(name: str) -> object:
    if name == "Dataset":  # lazily: keeps `import exactvc` light
        from .dataset import Dataset

        return Dataset
    raise AttributeError(f"module 'exactvc' has no attribute {name!r}")
__version__ = "0.1.0"
