"""What a model is: its networks (``archs``, by name) and the configuration that describes a
model and how it trains (``config``: the presets, TrainConfig and its checks).

Below both ``mf2.restore`` (inference) and ``mf2.train`` (the training loop): a checkpoint is read
back into networks without importing the trainer.
"""
