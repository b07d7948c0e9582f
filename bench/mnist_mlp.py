"""The classic Keras MNIST multilayer perceptron, as its tutorial writes it.

Dense 784 relu, Dense 784 relu, Dense 10 softmax; adam; categorical
crossentropy; 5 epochs of batch 128; about 98% test accuracy. The data is
Keras's own MNIST, read from the Keras cache (KERAS_HOME).

    KERAS_HOME=/tmp/keras_home .venv/bin/python bench/mnist_mlp.py [--epochs N] [--seed S]

The last line on stdout is JSON: {"test_accuracy": ..., "fit_s": ...}.
"""

import argparse
import json
import time

import keras
from keras.layers import Dense
from keras.models import Sequential

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=5)
parser.add_argument("--seed", type=int, default=42)  # configs/mnist_mlp.yaml's seed
args = parser.parse_args()
keras.utils.set_random_seed(args.seed)

# load data
(X_train, y_train), (X_test, y_test) = keras.datasets.mnist.load_data()
# flatten 28*28 images to a 784 vector for each image
num_pixels = X_train.shape[1] * X_train.shape[2]
X_train = X_train.reshape((X_train.shape[0], num_pixels)).astype("float32")
X_test = X_test.reshape((X_test.shape[0], num_pixels)).astype("float32")
# normalize inputs from 0-255 to 0-1
X_train = X_train / 255
X_test = X_test / 255
# one hot encode outputs
y_train = keras.utils.to_categorical(y_train)
y_test = keras.utils.to_categorical(y_test)
num_classes = y_test.shape[1]

# define the model
model = Sequential()
model.add(keras.Input(shape=(num_pixels,)))
model.add(Dense(num_pixels, activation="relu"))
model.add(Dense(num_pixels, activation="relu"))
model.add(Dense(num_classes, activation="softmax"))
model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])

# fit the model
started = time.perf_counter()
model.fit(X_train, y_train, epochs=args.epochs, batch_size=128)
fit_s = time.perf_counter() - started
# final evaluation of the model
scores = model.evaluate(X_test, y_test, verbose=0)
print("Baseline Error: %.2f%%" % (100 - scores[1] * 100))
print(json.dumps({"test_accuracy": float(scores[1]), "fit_s": round(fit_s, 3)}))
