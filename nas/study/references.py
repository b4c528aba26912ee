"""Reference models on a study's plots: presets trained and measured exactly like the study's trials.

    refs = preset_references(cfg, ["ds-cnn-s", "micronet-kws-s"])   # cached under runs/NAME/references/

Each preset goes through `evaluate_candidate` with the study's data, board, evaluator and training
budget (the study's hard budgets do not apply: a reference that breaks them is still drawn, so users
see why the search avoided it). Figures are cached per preset and spec digest.
"""

from __future__ import annotations

import json

from nas.study.config import SearchConfig
from nas.study.plots import ReferencePoint


def preset_references(cfg: SearchConfig, names: list[str], data=None, evaluator=None) -> list[ReferencePoint]:
    from nas.study.candidate import SearchContext, evaluate_candidate, load_data, make_evaluator
    from search_spaces.presets import get_preset

    out: list[ReferencePoint] = []
    pending = []
    for name in names:
        spec = get_preset(name)
        folder = cfg.run_dir / "references" / name
        cached = folder / "figures.json"
        if cached.is_file():
            fig = json.loads(cached.read_text())
            if fig.get("spec_digest_preset") == spec.digest():
                out.append(ReferencePoint(name, fig))
                continue
        pending.append((name, spec, folder))
    if pending:
        data = data if data is not None else load_data(cfg)
        evaluator = evaluator if evaluator is not None else make_evaluator(cfg, data)
        ctx = SearchContext(cfg.replace(budgets={}), data, evaluator)
        for name, spec, folder in pending:
            fig = evaluate_candidate(spec.with_classes(data.num_classes), ctx, 0, folder)
            fig["spec_digest_preset"] = spec.digest()
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "figures.json").write_text(json.dumps(fig, indent=2, default=str) + "\n")
            out.append(ReferencePoint(name, fig))
    return out
