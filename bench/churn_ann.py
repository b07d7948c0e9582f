"""The Keras ANN tutorial on bank churn (Churn_Modelling.csv), as it writes it.

Label-encode Geography and Gender, one-hot encode Geography (dropping the
first dummy), 80/20 split with random_state 0, standard scaling fitted on the
training split; Dense 6 relu (uniform init), Dense 6 relu, Dense 1 sigmoid;
adam; binary crossentropy; batch 10; 100 epochs; about 86% test accuracy.

    .venv/bin/python bench/churn_ann.py [CSV] [--epochs N] [--seed S]

CSV defaults to ../shared/data/churn/Churn_Modelling.csv (from the repository
root). The last line on stdout is JSON: {"test_accuracy": ..., "fit_s": ...}.
"""

import argparse
import json
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
from keras.layers import Dense
from keras.models import Sequential
from sklearn.compose import ColumnTransformer
from sklearn.metrics import confusion_matrix
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder, OneHotEncoder, StandardScaler

DEFAULT_CSV = Path(__file__).resolve().parent.parent / ".." / "shared" / "data" / "churn" / "Churn_Modelling.csv"
parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("csv", nargs="?", default=str(DEFAULT_CSV))
parser.add_argument("--epochs", type=int, default=100)
parser.add_argument("--seed", type=int, default=0)  # configs/churn_ann.yaml's seed
args = parser.parse_args()
keras.utils.set_random_seed(args.seed)

# Part 1 - Data Preprocessing
dataset = pd.read_csv(args.csv)
X = dataset.iloc[:, 3:13].values
y = dataset.iloc[:, 13].values

# Encoding categorical data
labelencoder_X_1 = LabelEncoder()
X[:, 1] = labelencoder_X_1.fit_transform(X[:, 1])  # Geography
labelencoder_X_2 = LabelEncoder()
X[:, 2] = labelencoder_X_2.fit_transform(X[:, 2])  # Gender
# OneHotEncoder(categorical_features=[1]) of the tutorial's scikit-learn: dummies first
onehotencoder = ColumnTransformer([("geography", OneHotEncoder(), [1])], remainder="passthrough")
X = onehotencoder.fit_transform(X)
X = X[:, 1:]  # avoid the dummy variable trap
X = np.asarray(X, dtype="float64")

# Splitting the dataset into the Training set and Test set
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)

# Feature Scaling
sc = StandardScaler()
X_train = sc.fit_transform(X_train)
X_test = sc.transform(X_test)

# Part 2 - Now let's make the ANN!
classifier = Sequential()
classifier.add(keras.Input(shape=(X_train.shape[1],)))
# Adding the input layer and the first hidden layer (Keras 1's init='uniform')
classifier.add(Dense(units=6, kernel_initializer="random_uniform", activation="relu"))
# Adding the second hidden layer
classifier.add(Dense(units=6, kernel_initializer="random_uniform", activation="relu"))
# Adding the output layer
classifier.add(Dense(units=1, kernel_initializer="random_uniform", activation="sigmoid"))
# Compiling the ANN
classifier.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
# Fitting the ANN to the Training set
started = time.perf_counter()
classifier.fit(X_train, y_train, batch_size=10, epochs=args.epochs)
fit_s = time.perf_counter() - started

# Part 3 - Making the predictions and evaluating the model
y_pred = classifier.predict(X_test)
y_pred = y_pred > 0.5
cm = confusion_matrix(y_test, y_pred)
print(cm)
accuracy = (cm[0, 0] + cm[1, 1]) / cm.sum()
print(json.dumps({"test_accuracy": float(accuracy), "fit_s": round(fit_s, 3)}))
