"""Running recipes: the loss terms (:mod:`.losses`), images (:mod:`.images`), the cost estimate
(:mod:`.cost`) and the optimisation engine (:mod:`.engine`). See
:mod:`netc.compiler.frontend.recipe` for what
a recipe means; ``netc recipe`` (:mod:`netc.runtime.commands.recipe`) runs one."""
