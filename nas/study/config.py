"""`SearchConfig`: one search experiment as frozen data, loaded from a small TOML file plus overrides.

    cfg = load_config("experiments/search/quick.toml", trials=20, board="mps2-an500")

A config file is a flat table of the fields below (any subset; the rest keep their defaults), with
optional ``[budgets]`` and ``[train]`` tables::

    name = "ds-cnn-m4"
    space = "ds-cnn"
    objectives = ["error", "flash_bytes", "latency"]
    [budgets]
    flash_bytes = 262144      # hard budgets: Optuna constraints, infeasible candidates are never trained
    ram_bytes = 65536
    [train]
    epochs = 8
    teachers = ["runs/train/ds-cnn-l"]  # optional: distil every trial from trained models

Experiments are short override files of this default, each override with its reason in a comment.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hardware.evaluators import EVALUATORS
from nas.config_files import build, read_settings
from nas.study.objectives import BUDGET_KEYS, OBJECTIVES

SAMPLERS = ("tpe", "evolution", "nsga2", "nsga3", "gp", "random")
ATTENTION_SPACES = ("ds-cnn", "micronet")  # the spaces of DS blocks, which take a squeeze-and-excitation gate
LOW_RANK_SPACES = ("ds-cnn", "dnn")  # the spaces whose layers take a rank (search_spaces.base.RANK_CHOICES)


@dataclass(frozen=True)
class TrainBudget:
    """A search trial's training, in epochs or steps: the same trial computes the same on any machine.

    With ``min_epochs`` the search is multi-fidelity (successive halving, `nas.study.fidelity`): every
    trained candidate runs ``min_epochs``, and only the best 1/``reduction_factor`` of those that reached a
    rung go on to the next (``min_epochs`` x factor, ... up to ``epochs``), each on the schedule of the full
    ``epochs``, so a candidate that goes the whole way is trained exactly as one that never stopped.
    """

    epochs: int | None = 6  # DS-CNN-S on the default corpus: validation ranks settle after ~5 epochs
    steps: int | None = None
    time_s: float | None = None  # a wall-clock cap per trial: a safety net only, off unless asked
    fraction: float = 1.0
    lr: float = 5e-3
    batch_size: int = 100
    min_epochs: int | None = None  # the first rung of successive halving; None: every candidate runs `epochs`
    reduction_factor: int = 3  # Hyperband's and ASHA's usual eta: keep the best third at each rung
    teachers: tuple[str, ...] = ()  # knowledge distillation for every trial (checkpoint directories)
    distill_temperature: float = 4.0
    distill_weight: float = 0.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "teachers", (self.teachers,) if isinstance(self.teachers, str)
                           else tuple(self.teachers))
        if self.min_epochs is not None:
            if isinstance(self.min_epochs, bool) or not isinstance(self.min_epochs, int) or self.min_epochs <= 0:
                raise ValueError(f"[train] min_epochs must be a positive integer, got {self.min_epochs!r}")
            if self.epochs is None or self.steps is not None or self.min_epochs >= self.epochs:
                raise ValueError("[train] min_epochs (successive halving) needs an epoch budget larger than it "
                                 f"and no step budget (epochs {self.epochs}, steps {self.steps}, min_epochs "
                                 f"{self.min_epochs})")
        if isinstance(self.reduction_factor, bool) or not isinstance(self.reduction_factor, int) \
                or self.reduction_factor < 2:
            raise ValueError(f"[train] reduction_factor must be an integer >= 2, got {self.reduction_factor!r}")

    def train_config(self, seed: int, trial: int = 0) -> Any:
        """The `nas.train.TrainConfig` of one trial (its checks are the budget's checks)."""
        from nas.train.config import TrainConfig

        return TrainConfig(batch_size=self.batch_size, epochs=self.epochs, max_steps=self.steps,
                           time_budget_s=self.time_s, train_fraction=self.fraction, peak_lr=self.lr, seed=seed,
                           trial=trial, teachers=self.teachers, distill_temperature=self.distill_temperature,
                           distill_weight=self.distill_weight)


@dataclass(frozen=True)
class SearchConfig:
    name: str = "search"
    space: str = "ds-cnn"
    data: str = "default"
    protocol: str = "12"
    split_rule: str | None = None
    noise: str | None = None
    frontend: str | None = None  # base front-end preset (None: the space's own)
    tune_frontend: bool = False  # make MFCC count / window / stride search dimensions
    low_rank: bool = False  # a rank per 1x1 convolution / dense layer as a search dimension (ds-cnn, dnn)
    attention: bool = False  # a squeeze-and-excitation gate per DS block as a search dimension (ds-cnn, micronet)
    board: str = "mps2-an386"
    evaluator: str = "emulator"
    port: str | None = None  # pyserial URL for evaluator = "serial"
    flash: str | None = None  # real boards: "pyocd", "pyocd:TARGET" or a command with {elf}/{bin}/{hex}
    objectives: tuple[str, ...] = ("error", "flash_bytes", "ram_bytes", "latency")
    budgets: dict[str, float] = field(default_factory=dict)  # e.g. {"flash_bytes": 262144, "latency_ms": 50}
    # Budgets from a reference: "PRESET" or a spec .json (its measured flash, RAM and latency on the board),
    # or "board" (the board's flash and RAM). Resolved once, when the study is created (`resolve_budgets`);
    # explicit [budgets] win over it.
    budget_from: str | None = None
    sampler: str = "tpe"
    warm_start: bool = True  # queue the space's presets that fit the budgets as the first trials
    seed_archs: tuple[str, ...] = ()  # more first trials: preset names or spec .json files (nas search --seed-arch)
    scale_seeds: bool = True  # with budgets, also queue each seed's widest copy that fits (`nas.study.seeds`)
    static_filter: bool = True  # candidates the free static estimates put over a budget are never measured
    # The least share of a budget a candidate the evolution sampler proposes must use, by the static estimates
    # (e.g. {"latency_ms": 0.6}): its population stays near the budget corner (`nas.study.static_check`).
    budget_floor: dict[str, float] = field(default_factory=dict)
    trials: int | None = 20
    time_limit_s: float | None = None
    workers: int = 1  # processes on this machine (two single-threaded trainers beat one two-threaded)
    seed: int = 0
    storage: str | None = None  # None: sqlite:///runs/<name>/study.db
    train: TrainBudget = field(default_factory=TrainBudget)

    def label_protocol(self) -> Any:
        """The `LabelProtocol` the data will be trained on: ``protocol`` fitted to the corpus (no ``_unknown_``
        class when every word is a keyword), known from the folder listing alone, before any audio is read."""
        return _fitted_protocol(self.protocol, self.data, self.noise)

    def __post_init__(self) -> None:
        bad = [o for o in self.objectives if o not in OBJECTIVES]
        if bad or not self.objectives:
            raise ValueError(f"unknown objective(s) {bad}: choose from {', '.join(OBJECTIVES)}")
        if len(set(self.objectives)) != len(self.objectives):
            raise ValueError(f"objectives repeat: {list(self.objectives)}")
        bad = [k for k in self.budgets if k not in BUDGET_KEYS]
        if bad:
            raise ValueError(f"unknown budget(s) {bad}: choose from {', '.join(BUDGET_KEYS)}")
        if any(not isinstance(v, int | float) or v <= 0 for v in self.budgets.values()):
            raise ValueError(f"budgets must be positive numbers, got {dict(self.budgets)}")
        for key, share in self.budget_floor.items():
            if key not in BUDGET_KEYS or (self.budget_from is None and key not in self.budgets):
                raise ValueError(f"budget floor {key!r} has no budget: budgets {sorted(self.budgets)}")
            if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share < 1:
                raise ValueError(f"budget floor {key}={share!r}: a share of the budget between 0 and 1")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}: choose from {', '.join(SAMPLERS)}")
        if self.evaluator not in EVALUATORS:
            raise ValueError(f"unknown evaluator {self.evaluator!r}: choose from {', '.join(EVALUATORS)}")
        if self.evaluator == "serial" and not self.port:
            raise ValueError("evaluator 'serial' needs a port (a pyserial URL such as /dev/ttyACM0)")
        if self.trials is None and self.time_limit_s is None:
            raise ValueError("a search needs a number of trials or a time limit")
        if self.trials is not None and self.trials <= 0 or self.workers <= 0:
            raise ValueError("trials and workers must be positive")
        if self.train.min_epochs is not None and "error" not in self.objectives:
            raise ValueError("successive halving ([train] min_epochs) ranks candidates by accuracy: add the "
                             "'error' objective")
        if self.time_limit_s is not None and not self.time_limit_s > 0:
            raise ValueError(f"the time limit must be positive seconds, got {self.time_limit_s}")
        if self.attention and self.space not in ATTENTION_SPACES:
            raise ValueError(f"attention: the {self.space!r} space has no squeeze-and-excitation dimension (spaces "
                             f"with one: {', '.join(ATTENTION_SPACES)})")
        if self.low_rank and self.space not in LOW_RANK_SPACES:
            raise ValueError(f"low_rank: the {self.space!r} space has no rank dimension (spaces with one: "
                             f"{', '.join(LOW_RANK_SPACES)})")
        self.train.train_config(self.seed)  # refuses a budget every trial would fail on, before the search
        from nas.data.label_sets import get_protocol

        get_protocol(self.protocol)  # a malformed word list is refused here, not in every trial
        from hardware.boards import get_board
        from search_spaces import SPACES

        if self.space not in SPACES:
            raise ValueError(f"unknown search space {self.space!r}; known spaces: {', '.join(SPACES)}")
        get_board(self.board)  # BoardError (a ValueError) names the known boards
        if not self.name or any(c in self.name for c in "/\\\0") or self.name.startswith("."):
            raise ValueError(f"study name {self.name!r} must be a plain name (it becomes a folder under runs/)")

    @property
    def run_dir(self) -> Path:
        return Path("runs") / self.name

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{self.run_dir / 'study.db'}"

    def replace(self, **changes: Any) -> SearchConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["objectives"] = list(self.objectives)
        d["seed_archs"] = list(self.seed_archs)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SearchConfig:
        d = dict(d)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown setting(s) {unknown}")
        if "train" in d:
            t = d["train"]
            if isinstance(t, dict):
                tk = {f.name for f in dataclasses.fields(TrainBudget)}
                if set(t) - tk:
                    raise ValueError(f"unknown [train] setting(s) {sorted(set(t) - tk)}")
                d["train"] = TrainBudget(**t)
        for key in ("objectives", "seed_archs"):
            if key in d and d[key] is not None:
                d[key] = (d[key],) if isinstance(d[key], str) else tuple(d[key])
        for key in ("budgets", "budget_floor"):
            if key in d:
                d[key] = dict(d[key])
        return cls(**d)


def load_config(path: Path | str | None = None, **overrides: Any) -> SearchConfig:
    """The default config, updated by the TOML file at ``path`` (if any), then by ``overrides``
    (None values are ignored, so CLI flags that were not given leave the file's values)."""
    d = read_settings(path, {k: v for k, v in overrides.items() if not k.startswith("train_")})
    train_over = {k[6:]: v for k, v in overrides.items() if k.startswith("train_") and v is not None}
    if train_over:
        d["train"] = {**d.get("train", {}), **train_over}
    return build(lambda **settings: SearchConfig.from_dict(settings), d, path)


@functools.lru_cache(maxsize=8)
def _fitted_protocol(protocol: str, data: str, noise: str | None) -> Any:
    """`SearchConfig.label_protocol`, one folder scan per (protocol, data, noise) in a process (a worker
    asks for its space several times)."""
    from nas.data.default import resolve_data
    from nas.data.label_sets import fit_to_corpus, get_protocol
    from nas.data.layout import scan_corpus

    return fit_to_corpus(get_protocol(protocol), scan_corpus(resolve_data(data), noise_dir=noise))
