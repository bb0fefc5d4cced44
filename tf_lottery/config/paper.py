"""The paper's Table 1 as data: what every recipe flagfile must resolve to.

Frankle, Dziugaite, Roy & Carbin, "Linear Mode Connectivity and the Lottery
Ticket Hypothesis", ICML 2020 (arXiv 1912.05671v4). Table 1 lists, per
network and variant: dataset, parameters, training steps, batch, optimizer,
learning rate, schedule, warmup, pruned density and pruning style. A test
(tests/test_paper_table.py) resolves every flagfile in flags/ and compares
it with these rows -- not with the flagfile itself -- so a changed density,
rate, schedule or step count fails there.

Where the values come from:

- Table 1 of the paper (the rows below, its units: iterations for MNIST and
  CIFAR-10, epochs for ImageNet). The copies of the paper in the search
  tool's pages corpus (ar5iv.labs.arxiv.org/html/1912.05671,
  vdocuments.us/linear-mode-connectivity-and-the-lottery-ticket-hypothesis)
  could be read there only as far as the introduction, so the rows were
  checked against the project's record of the paper's facts (DESIGN.md,
  "Facts from the paper") and a reading note made from the full v4 PDF
  (github.com/dmarx/anthology-of-the-sota, NOTE-514: "Means over 3
  initializations x 3 data orders", one-shot pruning for the ImageNet
  networks, 20 % per round iteratively for the rest).
- Sample counts: the captions of Figures 2 and 3 ("Each line is the mean and
  standard deviation across three initializations and three data orders
  (nine samples in total)", reprinted with attribution in a public survey
  of the lottery ticket hypothesis) and NOTE-514. Three data orders per
  initialization are three children, whose three pairs give the three
  samples of that initialization (``--children=3``: every pair is
  interpolated).
- Weight decay is not a column of Table 1: the CIFAR-10 and ResNet-50 rows
  carry open_lth's 1e-4 (the authors' framework, DESIGN.md), LeNet none, and
  Inception-v3 slim's L2 4e-5 (flags/inception_v3.cfg says why).

Pure Python, no imports from the rest of the package.
"""

from __future__ import annotations

import dataclasses

ITERATIONS = "iterations"
EPOCHS = "epochs"
ITERATIVE = "iterative"
ONE_SHOT = "one-shot"

# Training examples per dataset: an epoch is examples // batch steps, the
# last partial batch dropped (as every flagfile's --train_epochs converts).
TRAIN_EXAMPLES = {"mnist": 60_000, "cifar10": 50_000, "imagenet2012": 1_281_167}

# Figures 2-3 (and the IMP figures built on the same runs): three
# initializations, three data orders each.
PAPER_REPLICATES = 3
PAPER_DATA_ORDERS = 3
# IMP prunes 20 % of the remaining weights per level (iterative rows).
PRUNE_FRACTION = 0.2


@dataclasses.dataclass(frozen=True)
class Row:
    """One row of Table 1.

    Attributes:
      network, variant: as the paper names them ('' for a network's only row).
      model, dataset: this package's --model and --dataset names.
      params: the paper's parameter count, as printed.
      train: training length in ``unit`` (ITERATIONS or EPOCHS).
      batch: global batch size.
      optimizer: 'adam' or 'momentum' (SGD with momentum ``momentum``).
      learning_rate: the peak learning rate.
      schedule: 'constant', 'step' (divided by ``drop_factor`` at ``drops``,
        in ``unit``) or 'linear_decay' (to ``final_learning_rate`` at T).
      warmup: linear warmup length in ``unit`` (0: none).
      weight_decay: L2 / weight decay (not in Table 1; see the module doc).
      density: the pruned density, percent, as printed (one decimal).
      style: ITERATIVE (``PRUNE_FRACTION`` per level) or ONE_SHOT.
      accuracy: the paper's mean test accuracy of the dense network, percent.
    """

    network: str
    variant: str
    model: str
    dataset: str
    params: str
    train: int
    unit: str
    batch: int
    optimizer: str
    learning_rate: float
    schedule: str
    density: float
    style: str
    accuracy: float | None
    momentum: float | None = None
    drops: tuple[int, ...] = ()
    drop_factor: float | None = None
    final_learning_rate: float | None = None
    warmup: int = 0
    weight_decay: float = 0.0

    @property
    def name(self) -> str:
        return f"{self.network} {self.variant}".strip()

    def steps_per_unit(self) -> int:
        """Training steps per ``unit``: 1 for iterations, examples // batch for epochs."""
        return TRAIN_EXAMPLES[self.dataset] // self.batch if self.unit == EPOCHS else 1

    def to_steps(self, value: int) -> int:
        return value * self.steps_per_unit()


def _cifar(network: str, variant: str, learning_rate: float, density: float,
           accuracy: float | None, warmup: int = 0) -> Row:
    """A CIFAR-10 row: the paper trains ResNet-20 and VGG-16 alike."""
    model, params = {"ResNet-20": ("resnet20", "274K"), "VGG-16": ("vgg16", "14.7M")}[network]
    return Row(network=network, variant=variant, model=model, dataset="cifar10",
               params=params, train=63_000, unit=ITERATIONS, batch=128,
               optimizer="momentum", momentum=0.9, learning_rate=learning_rate,
               schedule="step", drops=(32_000, 48_000), drop_factor=0.1, warmup=warmup,
               weight_decay=1e-4, density=density, style=ITERATIVE, accuracy=accuracy)


# Accuracies are given where the project's record of the paper has them.
TABLE_1: tuple[Row, ...] = (
    Row(network="LeNet", variant="", model="lenet_300_100", dataset="mnist", params="266K",
        train=24_000, unit=ITERATIONS, batch=60, optimizer="adam", learning_rate=1.2e-3,
        schedule="constant", density=3.5, style=ITERATIVE, accuracy=98.3),
    _cifar("ResNet-20", "Standard", 0.1, 16.8, 91.7),
    _cifar("ResNet-20", "Low", 0.01, 8.6, None),
    _cifar("ResNet-20", "Warmup", 0.03, 8.6, None, warmup=30_000),
    _cifar("VGG-16", "Standard", 0.1, 1.5, 93.7),
    _cifar("VGG-16", "Low", 0.01, 5.5, None),
    _cifar("VGG-16", "Warmup", 0.1, 1.5, None, warmup=30_000),
    Row(network="ResNet-50", variant="", model="resnet50", dataset="imagenet2012",
        params="25.5M", train=90, unit=EPOCHS, batch=1024, optimizer="momentum",
        momentum=0.9, learning_rate=0.4, schedule="step", drops=(30, 60, 80),
        drop_factor=0.1, warmup=5, weight_decay=1e-4, density=30.0, style=ONE_SHOT,
        accuracy=76.1),
    Row(network="Inception-v3", variant="", model="inception_v3", dataset="imagenet2012",
        params="27.1M", train=171, unit=EPOCHS, batch=1024, optimizer="momentum",
        momentum=0.9, learning_rate=0.03, schedule="linear_decay",
        final_learning_rate=0.005, weight_decay=4e-5, density=30.0, style=ONE_SHOT,
        accuracy=None),
)


def row(name: str) -> Row:
    """The row named ``name`` ('ResNet-20 Low', 'LeNet', ...)."""
    for r in TABLE_1:
        if r.name == name:
            return r
    raise KeyError(f"no row {name!r} in Table 1; rows: {', '.join(r.name for r in TABLE_1)}")


def iterative_density(levels: int, prunable: int = 1, unpruned: int = 0) -> float:
    """Density in percent after ``levels`` IMP levels of ``PRUNE_FRACTION``,
    counting ``unpruned`` weights of excluded layers beside ``prunable``
    (the paper's density of VGG-16 counts its unpruned output layer)."""
    kept = prunable * (1 - PRUNE_FRACTION) ** levels + unpruned
    return 100.0 * kept / (prunable + unpruned)
