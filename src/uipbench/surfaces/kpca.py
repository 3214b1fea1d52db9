"""Kernel PCA of a precomputed kernel (scikit-learn), with explained variance from the centred kernel."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class KPCAResult:
    coords: np.ndarray  #: (n, n_components)
    explained_variance_ratio: np.ndarray  #: eigenvalue / trace of the centred kernel, per component
    eigenvalues: np.ndarray  #: all eigenvalues of the centred kernel, descending
    min_eigenvalue_uncentred: float  #: smallest eigenvalue of K (PSD check)


def centred(K: np.ndarray) -> np.ndarray:
    n = K.shape[0]
    H = np.eye(n) - np.full((n, n), 1.0 / n)
    return H @ K @ H


def kernel_pca(K: np.ndarray, n_components: int = 2) -> KPCAResult:
    """Kernel PCA of a precomputed kernel (scikit-learn), signs fixed (largest |coordinate| positive).

    Explained variance of component k = lambda_k / trace(HKH): the share of the total variance of the structures in
    the kernel's feature space (H centres it).
    """
    from sklearn.decomposition import KernelPCA

    kpca = KernelPCA(n_components=n_components, kernel="precomputed", eigen_solver="dense")
    coords = kpca.fit_transform(K)
    for k in range(coords.shape[1]):  # eigenvectors have arbitrary signs: make the figure reproducible
        if coords[np.argmax(np.abs(coords[:, k])), k] < 0:
            coords[:, k] *= -1
    Kc = centred(K)
    ev = np.sort(np.linalg.eigvalsh(0.5 * (Kc + Kc.T)))[::-1]
    ratio = ev[:n_components] / np.trace(Kc)
    return KPCAResult(coords, ratio, ev, float(np.linalg.eigvalsh(K).min()))
