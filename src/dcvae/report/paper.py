"""The paper's own numbers and settings (Table I, Section IV.D), which the report sets ours against."""

from __future__ import annotations

from typing import NamedTuple


class PaperAnchor(NamedTuple):
    """One cell of the paper's Table I: AUC in %, training minutes on the authors' machine if given."""

    auc: float
    minutes: float | None = None


#: The paper's Table I, model → dataset → anchor. The paper gives training minutes for dCVAE only;
#: beta-TCVAE is not in the paper. "emnist-byclass" is the paper's EMNIST (62 classes).
PAPER_TABLE_I: dict[str, dict[str, PaperAnchor]] = {
    "dcvae": {"mnist": PaperAnchor(88.31, 37), "fmnist": PaperAnchor(88.63, 44),
              "emnist-byclass": PaperAnchor(78.98, 102), "kmnist": PaperAnchor(61.02, 95)},
    "vae": {"mnist": PaperAnchor(88.21), "fmnist": PaperAnchor(84.12),
            "emnist-byclass": PaperAnchor(67.23), "kmnist": PaperAnchor(51.13)},
    "cvae": {"mnist": PaperAnchor(87.57), "fmnist": PaperAnchor(83.31),
             "emnist-byclass": PaperAnchor(66.01), "kmnist": PaperAnchor(42.35)},
    "factorvae": {"mnist": PaperAnchor(87.11), "fmnist": PaperAnchor(82.78),
                  "emnist-byclass": PaperAnchor(62.91), "kmnist": PaperAnchor(49.23)},
    "beta-vae": {"mnist": PaperAnchor(85.31), "fmnist": PaperAnchor(82.31),
                 "emnist-byclass": PaperAnchor(65.12), "kmnist": PaperAnchor(50.01)},
    "rfvae": {"mnist": PaperAnchor(85.31), "fmnist": PaperAnchor(81.11),
              "emnist-byclass": PaperAnchor(55.03), "kmnist": PaperAnchor(49.51)},
}
#: The paper's training settings (Section IV.D): at least 50 epochs; batch size and the primary /
#: secondary (discriminator) learning rates per dataset.
PAPER_MIN_EPOCHS = 50
PAPER_SETTINGS: dict[str, dict[str, float]] = {
    "mnist": {"batch_size": 64, "lr": 1e-5, "secondary_lr": 1e-3},
    "fmnist": {"batch_size": 64, "lr": 1e-5, "secondary_lr": 1e-3},
    "kmnist": {"batch_size": 64, "lr": 1e-5, "secondary_lr": 1e-3},
    "emnist-byclass": {"batch_size": 128, "lr": 1e-6, "secondary_lr": 1e-5},
}


#: What the authors' public code does, read from it (issue 14): the reason the paper's Table I is
#: not a target that the honest protocol here can be held to.
PAPER_EVALUATION = (
    "The paper's Table I and the honest protocol: the authors' public code holds out only class 1, "
    "conditions its model on the *test labels* when it evaluates (`dcvae/src/plot.py::"
    "run_roc_analysis`), and its PyTorch dCVAE trains as a plain CVAE (no learned conditional "
    "prior). Here no test label is ever used (marginal mode) and every class is held out in turn, "
    "so Table I is not a target this protocol can be held to on Fashion-MNIST and EMNIST; the "
    "honest leave-one-out stays the headline."
)
