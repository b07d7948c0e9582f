"""TensorFlow's basic classification tutorial: Fashion-MNIST with a dense network.

Flatten 28x28, Dense 128 relu, Dense 10 (softmax); adam; sparse categorical
crossentropy; 10 epochs; about 88% test accuracy. The data is Keras's own
Fashion-MNIST, read from the Keras cache (KERAS_HOME).

    KERAS_HOME=/tmp/keras_home .venv/bin/python bench/fashion_mnist_mlp.py [--epochs N] [--seed S]

The last line on stdout is JSON: {"test_accuracy": ..., "fit_s": ...}.
"""

import argparse
import json
import time

import tensorflow as tf

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--seed", type=int, default=1)  # configs/fashion_mnist_mlp.yaml's seed
args = parser.parse_args()
tf.keras.utils.set_random_seed(args.seed)

fashion_mnist = tf.keras.datasets.fashion_mnist
(train_images, train_labels), (test_images, test_labels) = fashion_mnist.load_data()

train_images = train_images / 255.0
test_images = test_images / 255.0

model = tf.keras.Sequential(
    [
        tf.keras.Input(shape=(28, 28)),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(128, activation="relu"),
        tf.keras.layers.Dense(10, activation="softmax"),
    ]
)

model.compile(optimizer="adam", loss=tf.keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])

started = time.perf_counter()
model.fit(train_images, train_labels, epochs=args.epochs)
fit_s = time.perf_counter() - started

test_loss, test_acc = model.evaluate(test_images, test_labels, verbose=2)
print("\nTest accuracy:", test_acc)
print(json.dumps({"test_accuracy": float(test_acc), "fit_s": round(fit_s, 3)}))
