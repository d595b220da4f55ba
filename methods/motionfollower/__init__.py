"""MotionFollower: motion editing with pose control and score guidance (docs/methods.md).

``controllers`` holds PoCtr / ReCtr and the released-key conversion, ``hooks`` where they enter
the UNet, ``sampler`` the released sampler and guidance, ``model`` the backbones (toy here,
real in ``real``), ``families`` their registry entries, ``adapter`` the registered method,
``weights`` the weight files, ``toy_train``/``toy_eval`` the toy's training and checks, ``cli``
their commands. The method is declared in ``methods/__init__`` with its parameters from
``params`` (torch-free). This file imports nothing, so the CLI reaches ``cli`` cheaply.
"""
