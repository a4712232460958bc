"""The training kit: the GAN objects (:mod:`~loomis.train.nets`, :mod:`~loomis.train.models`,
:mod:`~loomis.train.losses`), their data (:mod:`~loomis.train.data`, rendered heads in
:mod:`~loomis.train.render` and :mod:`~loomis.train.synthetic`, real portraits paired by
:mod:`~loomis.train.autopairs`), the loop (:mod:`~loomis.train.loop`), checkpoints, model
cards, the Hub push and the evaluation metrics.

It needs ``requirements-train.txt`` (torch). The product (``loomis`` above it) never
imports it; the commands are the scripts in ``train/``.
"""
