"""Breast cancer diagnosis: a dense network (ANN) on the Wisconsin diagnostic data set.

Data: scikit-learn's ``load_breast_cancer()`` (ships offline): 569 tumours, 30 numeric
features, malignant or benign. Split: 426 train / 143 validation, stratified,
random_state=0; features standardised on the training part. scikit-learn only loads,
splits and scales; the model is Keras. (A logistic regression scores 0.958 on this split.)

The settings as written are a weak start on purpose (a tuner benchmark task).
Suggested goal: val_accuracy >= 0.93 (at the default 0.90 the ladder needs 4 trials).
Measured with seeds 0, 1, 2 (``keras.utils.set_random_seed``), 10 epochs, batch 64, on
2 shared CPU cores; fit 5-7 s:

    FC_LAYERS        LEARNING_RATE   val_accuracy (min-max over seeds)
    [16]             1e-4            0.329-0.608   <- as written: learns too slowly
    [16]             3e-4            0.490-0.692
    [16]             1e-3            0.846-0.909   head too small
    [32, 16]         3.16e-4         0.874-0.923
    [256, 128]       1e-4            0.930-0.944
    [64, 32, 16]     1e-3            0.937-0.944   the ladder's 7th trial (seed 0)
    [128]            1e-3            0.937-0.944
    [16]             1e-2            0.951-0.965
"""

import keras
from keras import layers
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

FC_LAYERS = [16]
LEARNING_RATE = 1e-4
EPOCHS = 10
BATCH_SIZE = 64


def build_model(num_features: int) -> keras.Model:
    model = keras.Sequential([keras.Input(shape=(num_features,))])
    for units in FC_LAYERS:
        model.add(layers.Dense(units, activation="relu"))
    model.add(layers.Dense(1, activation="sigmoid"))
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=LEARNING_RATE),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    return model


def main() -> None:
    x, y = load_breast_cancer(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(
        x, y, test_size=0.25, random_state=0, stratify=y
    )
    scaler = StandardScaler().fit(x_train)  # fit on the training part only
    x_train, x_val = scaler.transform(x_train), scaler.transform(x_val)

    model = build_model(num_features=x_train.shape[1])
    history = model.fit(
        x_train,
        y_train,
        validation_data=(x_val, y_val),
        epochs=EPOCHS,
        batch_size=BATCH_SIZE,
        verbose=2,
    )
    acc = history.history["val_accuracy"][-1]
    print(f"val_accuracy: {acc:.4f}")


if __name__ == "__main__":
    main()
