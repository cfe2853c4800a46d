"""exactvc: version control for whole-slide image annotations.

    import exactvc
    repo = exactvc.Repository.init(path)
"""

from .annotation import Annotation
from .errors import ExactError
from .objects import ImageRecord, Label, LabelSet
from .repo import Repository

__all__ = ["Annotation", "ExactError", "ImageRecord", "Label", "LabelSet", "Repository"]
__version__ = "0.1.0"
