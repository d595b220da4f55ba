"""methods package (see README: one file per family).

The built-in methods are declared here, so that listing them and checking a config's
parameters import no torch; each module is imported when a run first needs its class.
A declaration is the one place a class's facts
are written: the registry sets them on the class (bench/registry.py).
"""
from motiongrid.bench.registry import backbones, commands, methods

methods.declare("reference", "motiongrid.methods.baselines:ReferenceBaseline", task="baseline",
                description="returns the scoring reference: the clip, or an edit's ground truth (ceiling)",
                Params="motiongrid.bench.params:NoParams")
methods.declare("static", "motiongrid.methods.baselines:StaticBaseline", task="baseline",
                description="repeats the first reference frame (zero motion)",
                Params="motiongrid.bench.params:NoParams")
methods.declare("unguided", "motiongrid.methods.motionclone.adapters:UnguidedMethod", task="baseline",
                description="AnimateDiff/toy text-to-video, same sampler, prompt and seed as motionclone, no motion guidance",
                Params="motiongrid.methods.motionclone.params:SamplerParams")
methods.declare("motionclone", "motiongrid.methods.motionclone.adapters:MotionCloneMethod", task="t2v-motion",
                description="MotionClone: temporal-attention guidance (primary top-k or plain) from one reference pass",
                Params="motiongrid.methods.motionclone.params:MotionCloneParams")
methods.declare("source", "motiongrid.methods.baselines:SourceBaseline", task="edit",
                description="returns the editing case's source video unchanged (appearance ceiling, motion floor)",
                Params="motiongrid.bench.params:NoParams")
methods.declare("motionfollower", "motiongrid.methods.motionfollower.adapter:MotionFollower", task="edit",
                description="MotionFollower: pose-controlled editing with score guidance (released sampler on diffusers)",
                Params="motiongrid.methods.motionfollower.params:MotionFollowerParams")

# Command groups (torch-free modules; the CLI imports them when it builds its parser).
commands.declare("toy", "motiongrid.methods.toy.cli:register", help="train, export and sample the toy model",
                 parent=None)
commands.declare("toy-edit", "motiongrid.methods.motionfollower.cli:register",
                 help="train, check and sample the toy MotionFollower", parent="toy")

# Backbone families (methods/backbone.py): which model ids MotionClone (t2v-motion) and
# MotionFollower (edit) accept; each module is imported when a model of its family is used.
backbones.declare("animatediff", "motiongrid.methods.animatediff:AnimateDiffFamily", task="t2v-motion",
                  description="SD1.5 + AnimateDiff motion adapter, latent space ('animatediff' or 'animatediff:<folder>')")
backbones.declare("toy", "motiongrid.methods.toy.model:ToyFamily", task="t2v-motion",
                  description="the toy world's pixel-space video model (ships with motiongrid)")
backbones.declare("motionfollower", "motiongrid.methods.motionfollower.families:ReleasedFamily", task="edit",
                  description="MotionFollower's released weights on SD image-variations")
backbones.declare("toy-motionfollower", "motiongrid.methods.motionfollower.families:ToyEditFamily", task="edit",
                  description="the toy MotionFollower fine-tuned from the toy model (ships with motiongrid)")
