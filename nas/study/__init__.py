"""Multi-objective architecture search with Optuna: configs, hardware-first candidates, studies,
Pareto fronts, plots and export.

    cfg = load_config("experiments/search/quick.toml")
    run_search(cfg)                                    # nas search
    pareto_front(study, cfg)                           # nas pareto
"""
