"""The studies, in the order the findings table lists them: folder, the claim in one line, its
source, the version of its protocol and how the compared sides were treated.

One entry per folder under studies/; the findings table (studies/FINDINGS.md and the README's
"Findings" section) is written in this order from these texts and the measured verdicts.
`protocol` is one of PROTOCOLS: every compared side tuned with an equal budget, or every side at
fixed settings (the source's or chosen before the run) with the parts not under test equal.
A study's README states the protocol of each version, written before that version ran.
"""

from __future__ import annotations

from dataclasses import dataclass


#: How the compared sides were set: see the module docstring.
PROTOCOLS = ("tuned", "symmetric", "single arm")


@dataclass(frozen=True)
class Study:
    folder: str
    claim: str
    source: str
    version: int = 1
    protocol: str = "symmetric"

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"study {self.folder}: protocol '{self.protocol}' is not one of {PROTOCOLS}")


STUDIES: tuple[Study, ...] = (
    Study("inan_himmelblau_basins",
          "Small-step GD's terminal basins on Himmelblau follow the gradient-flow basin areas",
          "Inan, Liu & Shehu 2024 (arXiv 2403.00574)", version=2),
    Study("inan_camel_global",
          "Noise-injected SGD and basin hopping reach six-hump camel's global basins more often "
          "than GD at equal gradient evaluations",
          "Inan, Liu & Shehu 2024", version=2),
    Study("inan_vision_sam",
          "Basin hopping / noisy SGD on par with SAM at about half the gradient evaluations "
          "(small vision task)",
          "Inan, Liu & Shehu 2024", version=2, protocol="tuned"),
    Study("vaswani_armijo_convex",
          "Adam at its default lr loses to SGD with Armijo line search on kernel logistic "
          "regression and matrix factorisation",
          "Vaswani et al. 2019 (arXiv 1905.09997); Orabona 2020", version=3, protocol="tuned"),
    Study("jiang_rmed_linear_net",
          "Adam's trajectory has smaller R_med than SGD with momentum's (two-layer linear net)",
          "Jiang, Malik & Li 2023 (arXiv 2211.02254)"),
    Study("jiang_rmed_transformer",
          "Adam's trajectory has smaller R_med than SGD with momentum's in each block's hidden "
          "matrices (byte-level transformer)",
          "Jiang, Malik & Li 2023", version=2),
    Study("pascanu_forgetting_shampoo",
          "Shampoo forgets less than Adam in class-incremental learning (split digits), both "
          "tuned for plasticity",
          "Pascanu et al. 2025 (arXiv 2507.12224)", version=2, protocol="tuned"),
    Study("pascanu_powerprop_sparsity",
          "A property-targeted optimizer (Powerprop) gives sparser solutions than its base",
          "Pascanu et al. 2025; Schwarz et al. 2021 (Powerpropagation)"),
    Study("bernstein_muon_steps",
          "Muon reaches a target loss in fewer steps than AdamW (byte-level transformer)",
          "Bernstein & Newhouse 2024 (arXiv 2409.20325); Jordan et al. (Muon)", version=2),
    Study("bernstein_lr_transfer",
          "The best lr moves less across width under the spectral/modular norm than under Adam",
          "Bernstein & Newhouse 2024; Large et al. 2024 (modular norm)", version=2, protocol="tuned"),
    Study("pascanu_shampoo_representations",
          "Shampoo gives more localized, lower-dimensional hidden representations than Adam "
          "(lower cross-class cosine of class means, lower effective rank; digits MLP, both tuned)",
          "Pascanu et al. 2025 (arXiv 2507.12224)", protocol="tuned"),
    Study("inan_flat_minima",
          "SAM and noise-injected SGD end in flatter minima (top Hessian eigenvalue, trace) than "
          "SGD at comparable training loss (digits MLP)",
          "Inan, Liu & Shehu 2024", protocol="tuned"),
    Study("orabona_architecture_flips",
          "The winner of a tuned optimizer comparison flips with the architecture "
          "(Adam vs SGD-momentum, MLP vs CNN on MNIST-1D)",
          "Orabona 2020 (blog: 'Neural networks (maybe) evolved to make Adam the best optimizer')",
          protocol="tuned"),
)
