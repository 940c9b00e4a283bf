//! The shape of the crate, checked: the graph of top-level modules (who names `crate::<m>` in
//! code, comments and unit tests aside) has no cycle, and the tool contract (`call`) depends on
//! no tool, no session and no frontend.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module → the top-level modules its code names.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = crate::common::repo_root().join("src");
    let names = regex::Regex::new(r"crate::([a-z_][a-z0-9_]*)").expect("regex");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read src") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let Some(top) = top_module(&src, &p) else {
                continue;
            };
            let text = std::fs::read_to_string(&p).expect("read");
            // unit tests may reach anywhere; the graph is about the code
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            let edges = graph.entry(top.clone()).or_default();
            for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
                for c in names.captures_iter(line) {
                    if c[1] != top {
                        edges.insert(c[1].to_string());
                    }
                }
            }
        }
    }
    graph
}

/// `src/tools/kubectl/write.rs` → `tools`; the crate roots and the binary's `cli` are no module
/// of the library's graph.
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main" | "cli")).then(|| name.to_string())
}

/// A cycle through `start`, if there is one (depth-first search).
fn cycle_from(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    fn walk(
        g: &BTreeMap<String, BTreeSet<String>>,
        node: &str,
        start: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in g.get(node).into_iter().flatten() {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(g, next, start, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_string()];
    let mut seen = BTreeSet::new();
    walk(graph, start, start, &mut path, &mut seen).then_some(path)
}

#[test]
fn the_module_graph_has_no_cycle() {
    let graph = module_graph();
    assert!(graph.len() > 20, "too few modules found: {graph:?}");
    let cycles: Vec<String> = graph
        .keys()
        .filter_map(|m| cycle_from(&graph, m))
        .map(|c| c.join(" → "))
        .collect();
    assert!(
        cycles.is_empty(),
        "import cycles between top-level modules (move the shared type down, or re-export it \
         from the lower module):\n{}",
        cycles.join("\n")
    );
}

#[test]
fn the_tool_contract_knows_no_tool_session_or_frontend() {
    let graph = module_graph();
    let call = graph.get("call").expect("src/call exists");
    for above in [
        "tools", "guard", "dispatch", "session", "protocol", "mcp", "eval", "audit", "store",
    ] {
        assert!(
            !call.contains(above),
            "src/call depends on `{above}`: {call:?}"
        );
    }
    // and the tools reach the guard only through the contract
    assert!(graph.get("tools").is_some_and(|t| t.contains("call")));
}
