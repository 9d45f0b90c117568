"""An offline feature network for the digits datasets: a small CNN trained on their train split.

FID needs a network that knows what the images should look like. The standard Inception-v3 is
a 95 MB download and sees 8x8 scans upscaled to 32x32 as blurry ImageNet photos; a classifier
trained on the digits themselves needs nothing downloaded and is sharp about strokes. Its
penultimate layer (64 ReLU units, scaled to unit mean square on the train split) gives the
features of 'fid_digits' and 'kid_digits'.

Training is deterministic (fixed seed, data order and augmentation) and takes about 20 s on two
CPU cores; the parameters are cached by (dataset, its files, `VERSION`) and reused afterwards.
"""

import hashlib
import logging
import os

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from stylejax.data.pipeline import InputPipeline
from stylejax.files import write_atomically

VERSION = 2  # part of the cache key: bump it when the network or its training changes
FEATURE_DIM = 64
NUM_CLASSES = 10
EPOCHS = 12
BATCH_SIZE = 64
LEARNING_RATE = 2e-3
MAX_SHIFT = 2  # pixels of random translation per training image

log = logging.getLogger(__name__)


class DigitsClassifier(nn.Module):
    """Images [N, R, R, C] in [-1, 1] -> class logits, or the 64-d features before them.

    3x3 conv + ReLU + 2x2 max pool stages halve the resolution down to 4x4 (three at 32x32).
    """

    @nn.compact
    def __call__(self, images: jnp.ndarray, features_only: bool = False) -> jnp.ndarray:
        x = images
        for i in range(int(np.log2(images.shape[1])) - 2):
            x = nn.relu(nn.Conv(min(16 * 2 ** i, 64), (3, 3), name=f"conv{i}")(x))
            x = nn.max_pool(x, (2, 2), (2, 2))
        x = nn.relu(nn.Dense(FEATURE_DIM, name="features")(x.reshape(x.shape[0], -1)))
        return x if features_only else nn.Dense(NUM_CLASSES, name="logits")(x)


def load_split(name: str, split: str, data_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
    """(images float32 [N, R, R, C] in [-1, 1], labels int [N]) of a whole split in stored order,
    read in full by this process (the classifier is trained and evaluated per process)."""
    probe = InputPipeline(name, global_batch_size=1, seed=0, split=split, data_dir=data_dir,
                          process_index=0, process_count=1)
    whole = InputPipeline(name, global_batch_size=probe.num_examples, seed=0, split=split,
                          data_dir=data_dir, process_index=0, process_count=1)
    batch = whole.batch(0)  # epoch 0 holds every example once
    stored = np.argsort(whole.indices(0))  # so that training does not follow the input shuffle
    return batch["image"][stored], batch["label"].argmax(axis=1)[stored]


def _shift(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each image moved by up to MAX_SHIFT pixels each way (edges filled with background)."""
    n, h, w, _ = images.shape
    padded = np.pad(images, ((0, 0), (MAX_SHIFT,) * 2, (MAX_SHIFT,) * 2, (0, 0)),
                    constant_values=-1)
    dy, dx = rng.integers(0, 2 * MAX_SHIFT + 1, (2, n))
    return np.stack([padded[i, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])


def train_classifier(images: np.ndarray, labels: np.ndarray, seed: int = 0) -> dict:
    """Trains a DigitsClassifier with Adam; the same inputs give the same parameters."""
    model = DigitsClassifier()
    params = model.init(jax.random.key(seed), images[:1])["params"]
    optimizer = optax.adam(optax.cosine_decay_schedule(LEARNING_RATE,
                                                       EPOCHS * (len(images) // BATCH_SIZE)))
    opt_state = optimizer.init(params)

    def loss_fn(p, x, y):
        logits = model.apply({"params": p}, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    # One jitted step per batch: a lax.scan over the steps measured 10x slower on CPU.
    @jax.jit
    def step(params, opt_state, x, y):
        grads = jax.grad(loss_fn)(params, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    rng = np.random.default_rng(seed)
    steps = len(images) // BATCH_SIZE
    for _ in range(EPOCHS):
        order = rng.permutation(len(images))[:steps * BATCH_SIZE].reshape(steps, BATCH_SIZE)
        for rows in order:
            params, opt_state = step(params, opt_state, _shift(images[rows], rng), labels[rows])
    return jax.device_get(params)


def accuracy(params: dict, images: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of images classified correctly."""
    logits = jax.jit(DigitsClassifier().apply)({"params": params}, images)
    return float(np.mean(np.asarray(logits).argmax(axis=1) == labels))


def features(variables: dict, images: jnp.ndarray) -> jnp.ndarray:
    """The penultimate-layer features, divided by their root mean square on the train split, so
    that FID and KID come out on a fixed scale (KID's kernel x.y / d + 1 assumes features of
    order one, as Inception's are) whatever scale training happened to give them."""
    raw = DigitsClassifier().apply({"params": variables["params"]}, images, features_only=True)
    return raw / variables["feature_scale"]


def load_or_train(name: str, data_dir: str | None, cache_dir: str, dataset_fingerprint: str,
                  image_shape: tuple[int, int, int]) -> tuple[dict, str]:
    """({'params', 'feature_scale'}, sha256 of them) of the classifier for dataset `name`
    (images of `image_shape`), trained on its train split on first use and cached in
    `cache_dir` under the dataset's fingerprint."""
    key = hashlib.sha256(f"{name}:{dataset_fingerprint}:{VERSION}".encode()).hexdigest()[:16]
    path = os.path.join(cache_dir, f"digits_classifier_{key}.msgpack")
    if os.path.isfile(path):
        template = {"params": DigitsClassifier().init(jax.random.key(0),
                                                      jnp.zeros((1, *image_shape)))["params"],
                    "feature_scale": np.float32(1)}
        with open(path, "rb") as f:
            data = f.read()
        return flax.serialization.from_bytes(template, data), hashlib.sha256(data).hexdigest()
    images, labels = load_split(name, "train", data_dir)
    log.info("training the digits feature classifier on %d images of %s (first use)",
             len(images), name)
    variables = {"params": train_classifier(images, labels), "feature_scale": np.float32(1)}
    raw = np.asarray(jax.jit(features)(variables, images), np.float64)
    variables["feature_scale"] = np.float32(np.sqrt(np.mean(raw ** 2)))
    data = flax.serialization.to_bytes(variables)
    if jax.process_index() == 0:
        os.makedirs(cache_dir, exist_ok=True)
        write_atomically(path, lambda f: f.write(data))
        log.info("digits feature classifier cached in %s", path)
    return variables, hashlib.sha256(data).hexdigest()
