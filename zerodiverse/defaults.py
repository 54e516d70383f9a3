"""The defaults every experiment config starts from (the paper's ConstNet recipe); configs override a few fields."""

import ml_collections

# The field that says how a model is initialized, by config.model.name (config.model.scheme otherwise).
INIT_FIELDS = {"leakynet": "init_string", "mlp": "hidden_init"}
# Fields that no longer exist, with what replaced them: the message a config that still sets one gets.
RENAMED = {
    "model.init": "config.model.init is split by meaning: set config.model.scheme (ConstNet and the "
                  "pre-activation ResNets), config.model.init_string (LeakyNet) or config.model.hidden_init (mlp)",
}


def init_field(model_name: str) -> str:
  """'scheme', 'init_string' or 'hidden_init': the field of config.model that initializes `model_name`."""
  return INIT_FIELDS.get(model_name, "scheme")


def init_of(model) -> str:
  """The value of that field in a config.model (a ConfigDict or the dict of a summary or config.json)."""
  return model[init_field(model["name"])]


def base() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.determinism = "deterministic"  # or "nondeterministic_allowed" (determinism.py)
  config.backend = "jax"  # or "torch": the PyTorch twin (zerodiverse/torch_baseline, the `torch` extra)
  config.tf32 = False     # float32 matmuls/convs at full precision on both backends unless True

  config.model = ml_collections.ConfigDict()
  config.model.name = "constnet"
  config.model.depth = 16
  config.model.width = 10        # ConstNet: widen factor k; mlp: hidden units
  config.model.scheme = "constant"  # ConstNet: constant | he | random_residual; the pre-activation ResNets: models/preact.py
  config.model.init_string = "1_iiii_11ii_iiii"  # LeakyNet: the per-layer init string (models/leakynet.py)
  config.model.hidden_init = "he_normal"  # mlp: the hidden layer's initializer name (models/mlp.py)
  config.model.unique_features = 0  # mlp only: distinct hidden features (0 = all)
  config.model.ll_base = "orthogonal"   # looks_linear / risotto schemes: orthogonal | gaussian
  config.model.zero_convention = "paper"  # zero (ZerO) scheme: paper | notebook (1/sqrt(2) of the paper's)
  config.model.shortcut_input = "relu_bn"  # ConstNet stage-entry 1x1 shortcut reads relu_bn = ReLU(BN(x)) | bn = BN(x)
  config.model.residual_var_scale = 1.0  # ConstNet scheme=random_residual: residual convs N(0, 2 s / (9 out))
  config.model.bn_decay = 0.9      # BN running average: decay * running + (1 - decay) * batch (torch momentum 0.1)
  config.model.bn_group_size = 0   # BN statistics over groups of this many examples; 0 = the whole batch

  config.breaker = ml_collections.ConfigDict()
  config.breaker.init_noise = 0.0           # eps; 0 = off
  config.breaker.init_noise_scale = "fan_in"  # or "absolute"
  config.breaker.init_noise_groups = "all"  # or e.g. "residual,stem"
  config.breaker.dropout = 0.0              # residual-branch dropout rate (the paper: 0.01); LeakyNet: every block layer
  config.breaker.stem_dropout = 0.0         # ConstNet: dropout rate after the stem (the authors' --dropl1)
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
