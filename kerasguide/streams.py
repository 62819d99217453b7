"""Streamed data: image folders read batch by batch from disk, and your own `tf.data` pipelines.

An `images:DIR` source is indexed once (its file paths and class folders,
by `keras.utils.image_dataset_from_directory`), split by path (stratified,
with the seed: recipe A3), and each split is a `tf.data` pipeline that
reads, decodes and resizes its images as they are needed: resident memory
does not grow with the folder. Only a bounded sample (`data.sample`
training examples) is ever held in memory: the preprocessing statistics are
fitted on it (recipe A2, on the training split only) and the sanity checks
run on it.

A `python:PATH:FUNCTION` source may return `tf.data.Dataset`s: they are
taken batched, as `model.fit` takes them, and used as given (their batch
size, their shuffling), with the preprocessing fitted on a sample of the
training stream mapped over them.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kerasguide._logging import import_tensorflow
from kerasguide.errors import ConfigError

import_tensorflow()

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

__all__ = ["ImageFolder", "index_images", "image_stream", "read_images", "is_tf_dataset", "stream_sample",
           "preprocess_tf", "count_stream", "describe_paths"]

# The formats tf.image.decode_image reads, by their first bytes: a file that is none of them is named before any
# training starts, rather than failing mid-epoch with a decoder error that names no file.
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")


@dataclass
class ImageFolder:
    """The images of a folder of class subfolders: paths, class ids, class names."""

    root: Path
    paths: np.ndarray
    labels: np.ndarray
    class_names: list[str]


def index_images(directory: str, image_size: tuple[int, int], color_mode: str) -> ImageFolder:
    """The images under `directory` (one subfolder per class), each checked to be a readable image format."""
    folder = Path(directory).expanduser()
    if not folder.exists():
        raise ConfigError(f"data.source: image folder {directory!r} does not exist")
    if not folder.is_dir():
        raise ConfigError(f"data.source: {directory!r} is not a folder of class subfolders")
    try:
        # Keras lists the files and infers the classes (the listing is lazy: nothing is decoded here).
        listing = keras.utils.image_dataset_from_directory(
            folder, labels="inferred", label_mode="int", color_mode=color_mode, image_size=tuple(image_size),
            shuffle=False, batch_size=None, verbose=False)
    except ValueError as error:
        raise ConfigError(f"data.source: {directory!r}: {error}") from None
    paths = np.asarray(listing.file_paths)
    if paths.size == 0:
        raise ConfigError(f"data.source: no images found in {directory!r} (one subfolder per class, "
                          ".png .jpg .jpeg .bmp .gif files)")
    names = list(listing.class_names)
    index = {name: i for i, name in enumerate(names)}
    labels = np.array([index[Path(p).relative_to(folder).parts[0]] for p in paths], dtype=np.int64)
    bad = [p for p in paths if not _is_image(p)]
    if bad:
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        raise ConfigError(f"data.source: {bad[0]!r}{more} is not a readable image (png, jpeg, bmp or gif); "
                          "remove it or convert it")
    return ImageFolder(folder, paths, labels, names)


def _is_image(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError:
        return False
    return any(head.startswith(magic) for magic in _MAGIC)


def _decoder(image_size: tuple[int, int], color_mode: str):
    channels = 1 if color_mode == "grayscale" else 3
    size = tuple(int(v) for v in image_size)

    def decode(path):
        # What keras.utils.image_dataset_from_directory does per image (bilinear resize), then the 0..1 scale
        # kerasguide's image sources use; Keras keeps this step private, so it is repeated here.
        image = tf.image.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
        image = tf.image.resize(image, size)
        image.set_shape((*size, channels))
        return image / 255.0

    return decode


def image_stream(paths: np.ndarray, labels: np.ndarray, image_size: tuple[int, int], color_mode: str,
                 shuffle: bool = False, seed: int = 0) -> tf.data.Dataset:
    """`(image, label)` examples, unbatched, decoded as they are read; shuffled anew each epoch when asked."""
    ds = tf.data.Dataset.from_tensor_slices((paths.astype(str), labels))
    if shuffle:
        # Shuffle the paths, not the images: an exact shuffle of any folder for a few bytes per file.
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    decode = _decoder(image_size, color_mode)
    return ds.map(lambda path, label: (decode(path), label), num_parallel_calls=tf.data.AUTOTUNE)


def read_images(paths: np.ndarray, image_size: tuple[int, int], color_mode: str, batch_size: int = 256) -> np.ndarray:
    """The images at `paths` as one float32 array in 0..1 (a bounded sample: never a whole folder)."""
    decode = _decoder(image_size, color_mode)
    ds = tf.data.Dataset.from_tensor_slices(paths.astype(str)).map(decode, num_parallel_calls=tf.data.AUTOTUNE)
    try:
        parts = [batch.numpy() for batch in ds.batch(batch_size)]
    except tf.errors.InvalidArgumentError as error:
        raise ConfigError(f"data.source: an image could not be decoded: {error.message.splitlines()[0]}") from None
    channels = 1 if color_mode == "grayscale" else 3
    return np.concatenate(parts) if parts else np.zeros((0, *image_size, channels), np.float32)


def describe_paths(paths: np.ndarray) -> str:
    """A fingerprint of a split of files: their paths, sizes and modification times (never their bytes)."""
    digest = hashlib.sha256()
    for path in paths:
        try:
            stat = os.stat(path)
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{path}\0missing\n".encode())
    return digest.hexdigest()[:16]


def is_tf_dataset(value: Any) -> bool:
    return isinstance(value, tf.data.Dataset)


def stream_sample(ds: tf.data.Dataset, n: int, where: str) -> tuple[Any, Any]:
    """The first `n` examples of a batched stream, as NumPy `(x, y)` (dicts and lists of inputs kept)."""
    try:
        first = next(iter(ds.unbatch().take(n).batch(n)))
    except StopIteration:
        raise ConfigError(f"data.source: {where} returned an empty dataset") from None
    except (tf.errors.OpError, ValueError, TypeError) as error:
        raise ConfigError(f"data.source: {where}: its dataset could not be read as batches of (inputs, targets) "
                          f"({type(error).__name__}: {str(error).splitlines()[0][:200]}); return datasets batched, "
                          "as model.fit takes them") from None
    if not isinstance(first, tuple) or len(first) not in (2, 3):
        raise ConfigError(f"data.source: {where}: its datasets must yield (inputs, targets) pairs; got "
                          f"{type(first).__name__}")
    return tuple(tf.nest.map_structure(lambda t: t.numpy(), first[:2]))


def count_stream(ds: tf.data.Dataset, where: str) -> tuple[int, int]:
    """`(batches, examples)` of one pass over a batched stream; an endless one is bad input."""
    cardinality = int(ds.cardinality())
    if cardinality == tf.data.INFINITE_CARDINALITY:
        raise ConfigError(f"data.source: {where} returned an endless dataset (.repeat()); return one pass "
                          "per epoch: Keras repeats it")

    def add(count, batch):
        leaf = tf.nest.flatten(batch[0])[0]
        return count + tf.cast([1, tf.shape(leaf)[0]], tf.int64)

    batches, examples = ds.reduce(tf.constant([0, 0], tf.int64), add).numpy()
    return int(batches), int(examples)


def preprocess_tf(pre: Any):
    """The fitted `Preprocessor`'s transform as TensorFlow ops on a batch, for `tf.data.Dataset.map`."""
    if pre is None or pre.mode == "none":
        return None
    mean = tf.constant(pre.mean, tf.float32)
    scale = tf.constant(pre.scale, tf.float32) if pre.scale is not None else None
    components = tf.constant(pre.components, tf.float32) if pre.components is not None else None
    root = tf.constant(np.sqrt(pre.eigenvalues + pre.epsilon), tf.float32) if pre.eigenvalues is not None else None
    shape = tuple(pre.input_shape)

    def transform(x):
        flat = tf.reshape(tf.cast(x, tf.float32), (-1, int(np.prod(shape)))) - mean
        if scale is not None:
            flat = flat / scale
        if components is None:
            return tf.reshape(flat, (-1, *shape))
        projected = tf.matmul(flat, components)
        return projected / root if root is not None else projected

    return transform
