"""Data: locate and decode datasets once (``load_dataset``), split them, weight classes, augment batches."""

from nasattn.data.augment import (
    AUGMENTATIONS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    make_eval_transform,
    make_train_transform,
    normalize,
    tta_views,
)
from nasattn.data.dataset import DataError, DataNotFoundError, ImageDataset
from nasattn.data.sources import (
    ENV_CACHE,
    ENV_DATA,
    HOW_TO_GET_DATA,
    MINI_DIR,
    MINI_NAME,
    RESIZE_RULE,
    ImageFile,
    class_root,
    default_cache_dir,
    fit_image,
    list_images,
    load_dataset,
)
from nasattn.data.split import (
    DEFAULT_RATIOS,
    DEFAULT_SEED,
    Splits,
    compute_class_weights,
    min_split_size,
    random_split_lengths,
    split_dataset,
    stratified_subset,
)

__all__ = [
    "AUGMENTATIONS", "DEFAULT_RATIOS", "DEFAULT_SEED", "ENV_CACHE", "ENV_DATA", "HOW_TO_GET_DATA", "IMAGENET_MEAN",
    "IMAGENET_STD", "MINI_DIR", "MINI_NAME", "RESIZE_RULE", "DataError", "DataNotFoundError", "ImageDataset",
    "ImageFile", "Splits", "class_root", "compute_class_weights", "default_cache_dir", "fit_image", "list_images",
    "load_dataset", "make_eval_transform", "make_train_transform", "min_split_size", "normalize",
    "random_split_lengths", "split_dataset", "stratified_subset", "tta_views",
]
