//! Golden files: expected output checked in beside the inputs. Set `EKS_AGENT_UPDATE_GOLDEN=1`
//! to rewrite them from the current output (then review the diff before committing).

use std::path::Path;

/// The env var that turns comparison into regeneration.
pub const UPDATE_ENV: &str = "EKS_AGENT_UPDATE_GOLDEN";

/// Compares `actual` with the golden file at `path`, or rewrites it when regenerating.
/// Returns a unified diff on mismatch.
pub fn check(path: &Path, actual: &str) -> Result<(), String> {
    if std::env::var_os(UPDATE_ENV).is_some() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        std::fs::write(path, actual).map_err(|e| format!("write {}: {e}", path.display()))?;
        return Ok(());
    }
    let expected = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "{}: {e} (run with {UPDATE_ENV}=1 to create it)",
            path.display()
        )
    })?;
    if expected == actual {
        return Ok(());
    }
    let diff = similar::TextDiff::from_lines(expected.as_str(), actual)
        .unified_diff()
        .header(&path.display().to_string(), "actual")
        .to_string();
    Err(format!(
        "{} differs from the output:\n{diff}",
        path.display()
    ))
}
