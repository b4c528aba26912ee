"""kwsnas: neural-architecture search for small-footprint keyword spotting on microcontrollers.

`nas` holds the data, features, training, quantization, export, study and Pareto code and the CLI.
It imports `search_spaces` and `hardware`; they never import `nas`.
"""

__version__ = "0.1.0"
