"""Multi-objective architecture search with Optuna: configs, hardware-first candidates, studies,
Pareto fronts, plots and the winner (`winner`: pick a trial, retrain, quantize, report).

    cfg = load_config("experiments/search/quick.toml")
    run_search(cfg)                                    # nas search
    pareto_front(study, cfg)                           # nas pareto
"""
