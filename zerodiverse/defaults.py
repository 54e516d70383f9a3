"""The defaults every experiment config starts from (the paper's ConstNet recipe); configs override a few fields."""

import ml_collections


def base() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.determinism = "deterministic"  # or "default" (XLA left free; torch: cudnn.benchmark, nondeterministic ops)
  config.backend = "jax"  # or "torch": the PyTorch twin (zerodiverse/torch_baseline, the `torch` extra)
  config.tf32 = False     # float32 matmuls/convs at full precision on both backends unless True

  config.model = ml_collections.ConfigDict()
  config.model.name = "constnet"
  config.model.depth = 16
  config.model.width = 10        # ConstNet: widen factor k; mlp: hidden units
  config.model.init = "constant"  # ConstNet: constant | he; mlp: an initializer name
  config.model.unique_features = 0  # mlp only: distinct hidden features (0 = all)
  config.model.ll_base = "orthogonal"   # looks_linear / risotto schemes: orthogonal | gaussian
  config.model.zero_convention = "paper"  # zero (ZerO) scheme: paper | notebook (1/sqrt(2) of the paper's)

  config.breaker = ml_collections.ConfigDict()
  config.breaker.init_noise = 0.0           # eps; 0 = off
  config.breaker.init_noise_scale = "fan_in"  # or "absolute"
  config.breaker.init_noise_groups = "all"  # or e.g. "residual,stem"
  config.breaker.dropout = 0.0              # residual-branch dropout rate (the paper: 0.01)
  config.breaker.grad_noise = 0.0           # eps: g + eps * N(0, 1) on every gradient element each step; 0 = off
  config.breaker.rounding_noise = False     # GPU-like float32 reduction differences each step (breakers.py)
  config.breaker.rounding_noise_mode = "reorder"  # or "ulp"
  config.breaker.rounding_noise_partials = 8  # reorder: partial sums per reduction, added in a keyed order
  config.breaker.rounding_noise_tile = 1    # reorder: output channels sharing one order (> 1 needs data_grad)
  config.breaker.rounding_noise_data_grad = False  # reorder: the data gradient too
  config.breaker.rounding_noise_scale = 1.0  # ulp: sigma of the per-element move, in ulps

  config.data = ml_collections.ConfigDict()
  config.data.name = "cifar10"
  config.data.dir = ""       # a folder in the official binary layout; "" = tensorflow-datasets
  config.data.tfds_dir = ""  # tensorflow-datasets data_dir; "" = its default
  config.data.augment = True
  config.data.crop_padding = 4
  config.data.image_size = 224     # imagenet2012 only: crop size
  config.data.decode_threads = 16  # imagenet2012 only: JPEG decoding threads per host

  config.parallel = ml_collections.ConfigDict()
  config.parallel.num_devices = 0     # data-parallel devices; 0 = all devices of all processes
  config.parallel.distributed = False  # multi-host: call jax.distributed.initialize before the backend
  config.parallel.coordinator = ""     # host:port of process 0; "" = JAX's cluster auto-detection
  config.parallel.num_processes = 0
  config.parallel.process_id = -1

  config.train = ml_collections.ConfigDict()
  config.train.steps = 0
  config.train.epochs = 300.0
  config.train.batch_size = 128
  config.train.lr = 0.03
  config.train.momentum = 0.9
  config.train.weight_decay = 5e-4
  config.train.lr_drop_at = (160 / 300, 220 / 300, 260 / 300)  # epochs E-140, E-80, E-40 of E=300
  config.train.lr_drop_factor = 0.2
  config.train.log_every = 100
  config.train.eval_every = 2000
  config.train.eval_batch_size = 1000
  config.train.checkpoint_every = 2000
  config.train.progress = True
  config.train.symmetry_every = 100  # diversity metrics (symmetry.py) every N steps, at step 0 and each eval
  config.train.probe_batch_size = 256  # the fixed test-set batch for activation variance
  return config
