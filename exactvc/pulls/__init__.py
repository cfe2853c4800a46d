"""Pull requests on label branches: the metadata store (:mod:`.store`) and the review logic
(:mod:`.review`: the changes of a pull request, decisions, checks, merge preview and merge, agreement).
See docs/review.md."""
