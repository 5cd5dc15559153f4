"""The pieces of meta-learning: the learner base class and its meta-iteration, advantages,
policy-gradient surrogates, and second-order optimisation."""
