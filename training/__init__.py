"""PyTorch training for Prune Once for All: masks, sparsity schedules, distillation, recipes, NNCF QAT.

Imports ``pruneofa`` only (never ``exporter`` or ``deploy``). Its commands arrive with their issues.
"""
