-- Every change of the settings document through the API, with the whole document as it
-- was after the change (so a version can be restored) and the dotted paths that changed.
CREATE TABLE settings_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    source TEXT NOT NULL,
    changed TEXT NOT NULL DEFAULT '[]',
    restored_from INTEGER,
    doc TEXT NOT NULL
);
