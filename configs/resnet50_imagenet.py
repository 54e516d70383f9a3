"""ResNet-50 (pre-activation, ImageNet stem) on ImageNet, He init, the standard 90-epoch recipe: SGD momentum
0.9, lr 0.1 x batch/256, dropped x0.1 at epochs 30/60/80, weight decay 1e-4, batch 256, random resized crop
224 + flip, centre-crop eval.

  # once, with TensorFlow and the manually downloaded tars (see zerodiverse/data/imagenet.py):
  tfds build imagenet2012 --manual_dir=TARS --data_dir=TFDS_DIR --file_format=array_record
  python launch.py --config configs/resnet50_imagenet.py --workdir W --config.data.tfds_dir=TFDS_DIR
  # the ConstNet-style identical-feature arm:
  python launch.py --config configs/resnet50_imagenet.py:constant --workdir W2 --config.data.tfds_dir=TFDS_DIR

Expect about 76 % top-1 for the He arm after 90 epochs (hours on 8 modern GPUs; the batch is sharded over
all devices, multi-host with --config.parallel.distributed=true). `:smoke` (64-pixel crops, batch 32, 20
steps) checks the pipeline and model end to end on any prepared imagenet2012, in minutes on a CPU.
"""

from zerodiverse import defaults


def get_config(variant: str | None = None):
  config = defaults.base()
  config.model.name = "resnet50"
  config.model.width = 64
  config.model.scheme = "he"
  config.data.name = "imagenet2012"
  config.train.epochs = 90.0
  config.train.batch_size = 256
  config.train.lr = 0.1
  config.train.weight_decay = 1e-4
  config.train.lr_drop_at = (30 / 90, 60 / 90, 80 / 90)
  config.train.lr_drop_factor = 0.1
  config.train.log_every = 100
  config.train.eval_every = 5000
  config.train.eval_batch_size = 250
  config.train.checkpoint_every = 5000
  for part in (variant or "").split(","):
    if part == "constant":
      config.model.scheme = "constant"
    elif part == "smoke":
      config.data.image_size = 64
      config.model.width = 16
      config.train.epochs, config.train.steps = 0.0, 20
      config.train.batch_size, config.train.eval_batch_size = 32, 50
      config.train.log_every = config.train.eval_every = config.train.checkpoint_every = 10
    elif part:
      raise ValueError(f"configs/resnet50_imagenet.py:{variant}: unknown variant {part!r}; use constant, smoke")
  return config
