"""The inputs of the procedures answered here, as their lexicons define them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    # Lexicon inputs are open: unknown fields are accepted and ignored, as a PDS does.
    model_config = ConfigDict(extra="allow", frozen=True, strict=True, populate_by_name=True)


class CreateSessionBody(_Body):
    """``com.atproto.server.createSession``."""

    identifier: str = Field(min_length=1, max_length=512)
    password: str = Field(min_length=1, max_length=512)


class CreateRecordBody(_Body):
    """``com.atproto.repo.createRecord``."""

    repo: str = Field(min_length=1, max_length=2048)
    collection: str = Field(min_length=1, max_length=317)
    rkey: str | None = Field(default=None, max_length=512)
    validate_: bool | None = Field(default=None, alias="validate")
    record: dict[str, Any]
    swap_commit: str | None = Field(default=None, alias="swapCommit")


class PutRecordBody(_Body):
    """``com.atproto.repo.putRecord``."""

    repo: str = Field(min_length=1, max_length=2048)
    collection: str = Field(min_length=1, max_length=317)
    rkey: str = Field(min_length=1, max_length=512)
    validate_: bool | None = Field(default=None, alias="validate")
    record: dict[str, Any]
    swap_record: str | None = Field(default=None, alias="swapRecord")
    swap_commit: str | None = Field(default=None, alias="swapCommit")


class DeleteRecordBody(_Body):
    """``com.atproto.repo.deleteRecord``."""

    repo: str = Field(min_length=1, max_length=2048)
    collection: str = Field(min_length=1, max_length=317)
    rkey: str = Field(min_length=1, max_length=512)
    swap_record: str | None = Field(default=None, alias="swapRecord")
    swap_commit: str | None = Field(default=None, alias="swapCommit")


class ApplyWritesBody(_Body):
    """``com.atproto.repo.applyWrites``."""

    repo: str = Field(min_length=1, max_length=2048)
    validate_: bool | None = Field(default=None, alias="validate")
    writes: list[Any]
    swap_commit: str | None = Field(default=None, alias="swapCommit")
