"""``dcvae list``: the models, datasets, protocols and scores this version knows, without importing
PyTorch or scikit-learn (a listing should answer at once).

The model and score lines are written out here because the registries that define them import
PyTorch; ``tests/cli/test_catalogue.py`` checks that they are the registries' own, in their order.
"""

from __future__ import annotations

import click

from dcvae.cli.main import main
from dcvae.data import DATASETS
from dcvae.evaluation.protocols import FACTORS, PROTOCOLS

#: ``dcvae.models.all_models()``: each name and its class's ``describe()`` line.
MODELS: dict[str, str] = {
    "beta-tcvae": "beta-TCVAE: -log p(x|z) + alpha·MI + beta·TC + gamma·sum_k KL(q(z_k) || p(z_k)) "
                  "(Chen et al.).",
    "dcvae": "dCVAE: -log p(x|z,c) + beta·sum_i KL(q(z_i|x,c) || r(z_i|c)) [+ gamma·TC(z|c)] (Eq. 16).",
    "dcvae-prior": "dCVAE-prior: Eq. 16, fixed separated prior means, conv on images; recon + code "
                   "density + kNN.",
    "factorvae": "FactorVAE: -log p(x|z) + KL + gamma·TC, TC = E[D(z)[0] - D(z)[1]] (paper Eq. 4).",
    "rfvae": "RFVAE: -log p(x|z) + sum_j lambda_j·KL_j + gamma·TC_D(r⊙z) + eta_s·sum r + "
             "eta_h·sum H(r_j).",
    "vae": "Kingma & Welling's VAE: -log p(x|z) + KL(q(z|x) || N(0, I)) (paper Eq. above (1)).",
    "beta-vae": "beta-VAE: -log p(x|z) + beta·KL(q(z|x) || N(0, I)) (paper Eq. 2).",
    "cvae": "CVAE: -log p(x|z,c) + KL(q(z|x,c) || N(0, I)) (Sohn et al. 2015).",
    "ecod": "ECOD: empirical-CDF outlier detection (Li et al. 2022), PyOD's; pip install 'dcvae[pyod]'.",
    "knn": "kNN: mean L2 distance to the k nearest normal training samples (scikit-learn).",
    "pca": "PCA: reconstruction error ‖x − x̂‖₂ from the leading principal components (scikit-learn).",
    "pca-gauss": "PCA-Gauss: Gaussian NLL on the principal components, per condition (scikit-learn).",
    "iforest": "IForest: isolation forest, the negated score_samples of scikit-learn's IsolationForest.",
}
#: ``dcvae.models.DEFAULT_MODEL``.
DEFAULT_MODEL = "dcvae-prior"
#: ``dcvae.scoring.BASE_SCORES``.
BASE_SCORES = ("elbo", "kl", "latent", "latent-knn", "prior", "recon", "ic-elbo", "ecod", "distance",
               "gauss-nll", "isolation")


@main.command(name="list")
def list_() -> None:
    """The models, datasets, protocols and scores this version knows."""
    for name, line in MODELS.items():
        default = " (the default)" if name == DEFAULT_MODEL else ""
        click.echo(f"model     {name:<12} {line}{default}")
    for name in sorted(DATASETS):
        click.echo(f"dataset   {name}")
    for name in sorted(PROTOCOLS):
        click.echo(f"protocol  {name}")
    with_factors = ", ".join(sorted(d for d, spec in DATASETS.items() if spec.factor_names))
    click.echo(f"protocol  {FACTORS:<12} disentanglement of the codes (grid files; datasets {with_factors})")
    for name in BASE_SCORES:
        click.echo(f"score     {name}")
    click.echo("score     typical-NAME (two-sided typicality), A+B (standardised sum)")
