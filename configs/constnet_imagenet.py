"""ConstNet on ImageNet: ResNet-50 with the ConstNet-style identical-feature init (every feature of a layer
identical, every residual branch 0 at init), against its He-initialized twin, same recipe as
configs/resnet50_imagenet.py.

  python launch.py --config configs/constnet_imagenet.py --workdir W --config.data.tfds_dir=TFDS_DIR

Arms (a sweep: W/constant, W/constant_noise, W/he): no breaker, keyed init noise 1e-3, He. Expect, under
deterministic XLA, the no-breaker arm to keep 1 distinct channel per layer and train far worse, and the other
two to train to about the same accuracy (the paper's claim on ImageNet). `:smoke` shrinks every arm as
resnet50_imagenet.py:smoke does.
"""

from configs import resnet50_imagenet


def get_config(variant: str | None = None):
  config = resnet50_imagenet.get_config(variant)
  config.arms = {
      "constant": {"model": {"scheme": "constant"}},
      "constant_noise": {"model": {"scheme": "constant"}, "breaker": {"init_noise": 1e-3}},
      "he": {"model": {"scheme": "he"}},
  }
  return config
