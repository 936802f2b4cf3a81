# %% [markdown]
# # Seeding scikit-learn through NumPy's global generator
#
# `np.random.seed` once at the top; `train_test_split` and the random forest get no `random_state`,
# so they draw from the global generator.

# %%
import numpy as np
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split

np.random.seed(42)

# %%
X, y = make_classification(n_samples=200, n_features=6, random_state=0)
X.shape

# %%
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3)
y_test[:10]

# %%
forest = RandomForestClassifier(n_estimators=20).fit(X_train, y_train)
forest.score(X_test, y_test)

# %%
np.random.rand(3).round(4)
