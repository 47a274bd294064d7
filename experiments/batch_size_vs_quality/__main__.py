"""python -m experiments.batch_size_vs_quality: see the package docstring."""

from absl import app

from experiments.batch_size_vs_quality import main

if __name__ == "__main__":
    main.define_flags()
    app.run(main.main)
