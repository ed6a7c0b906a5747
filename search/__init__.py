"""How to search: the Ray Tune + Optuna driver, the candidate de-duplicator, results and Pareto fronts.

Imports nothing heavy at package import; :mod:`nasq.search.driver` pulls in Ray when used.
"""
