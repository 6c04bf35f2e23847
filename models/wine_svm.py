"""Wine cultivar: an RBF support vector machine (scikit-learn) on the UCI wine data set.

Data: scikit-learn's ``load_wine()`` (ships offline): 178 wines, 13 chemical features,
3 cultivars. Split: 133 train / 45 held out, stratified, random_state=0; features
standardised inside the pipeline. Tunables: the ``SVC`` keywords ``C`` and ``gamma``.
The held-out score goes to the tuner with ``tuner.report(accuracy=...)`` when the package
is installed, and is printed as ``accuracy: 0.xxxx`` either way.

The settings as written are a weak start on purpose (a tuner benchmark task).
Suggested goal: accuracy >= 0.90. Deterministic (no seed involved); fit well under 1 s:

    C       gamma   accuracy
    0.01    1.0     0.4000   <- as written: over-regularised, predicts one class
    1.0     1.0     0.6222   gamma too high: over-fits
    10      1.0     0.7111
    1.0     0.001   0.8667   gamma too low
    0.1     0.1     1.0000   the ladder's 5th trial
    1.0     0.01    1.0000
    10      0.01    1.0000

Over 300 draws log-uniform in the tuner's space (C 1e-3..1e3, gamma 1e-4..1e1),
47% reach 0.90.
"""

from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

try:
    from tuner import report
except ImportError:  # mlops-autotune not installed: just print

    def report(**metrics: float) -> None:
        print("reported:", ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))


def main() -> None:
    x, y = load_wine(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(
        x, y, test_size=0.25, random_state=0, stratify=y
    )
    model = make_pipeline(StandardScaler(), SVC(C=0.01, gamma=1.0))
    model.fit(x_train, y_train)
    score = model.score(x_val, y_val)
    report(accuracy=score)
    print(f"accuracy: {score:.4f}")


if __name__ == "__main__":
    main()
