"""What can go wrong with the artifact store, each error naming the key or id involved."""


class StoreError(RuntimeError):
    """Base of every artifact-store error."""


class ArtifactNotFound(StoreError):
    pass


class ArtifactConflict(StoreError):
    """Different content was published under an id that is already taken: ids are immutable."""


class IntegrityError(StoreError):
    """An object's bytes do not match the sha256 and size recorded for it (corrupt or truncated)."""


class InvalidKey(StoreError):
    pass
