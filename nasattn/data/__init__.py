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
from nasattn.data.sources import ENV_CACHE, ENV_DATA, HOW_TO_GET_DATA, MINI_DIR, MINI_NAME, default_cache_dir, load_dataset
from nasattn.data.split import DEFAULT_RATIOS, DEFAULT_SEED, Splits, compute_class_weights, split_dataset, stratified_subset

__all__ = [
    "AUGMENTATIONS", "DEFAULT_RATIOS", "DEFAULT_SEED", "ENV_CACHE", "ENV_DATA", "HOW_TO_GET_DATA", "IMAGENET_MEAN",
    "IMAGENET_STD", "MINI_DIR", "MINI_NAME", "DataError", "DataNotFoundError", "ImageDataset", "Splits",
    "compute_class_weights", "default_cache_dir", "load_dataset", "make_eval_transform", "make_train_transform",
    "normalize", "split_dataset", "stratified_subset", "tta_views",
]
