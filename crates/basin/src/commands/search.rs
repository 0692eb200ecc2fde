//! `basin search`: the service's search, printed.

use basin_service::{SearchQuery, Session};

use crate::cli::{Global, OutputFormat, SearchArgs};
use crate::output::print_records;

pub async fn run(g: &Global, session: &Session, args: SearchArgs) -> anyhow::Result<()> {
    let results = session
        .search(&SearchQuery {
            q: args.query,
            hub: args.hub,
            layer: args.layer,
            domain: args.domain,
            tag: args.tag,
            owner: args.owner,
            limit: Some(args.limit),
            page_token: args.page_token,
        })
        .await?;
    if g.output == OutputFormat::Json {
        // Hits, facets, the total and the next page's token, whole.
        println!("{}", serde_json::to_string_pretty(&results)?);
        return Ok(());
    }
    print_records(
        g.output,
        &["kind", "name", "matched", "description", "tags"],
        &results.hits,
    )?;
    eprintln!("{} hit(s) in all", results.total);
    if let Some(token) = results.next_page_token {
        eprintln!("more: --page-token {token}");
    }
    Ok(())
}
