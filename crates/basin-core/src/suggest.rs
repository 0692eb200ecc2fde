/// The candidate closest to `name`, if one is close enough to be a plausible typo.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        .filter(|(d, c)| *d <= (name.len().max(c.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn suggests_typos_only() {
        let names = ["orders", "customers", "order_items"];
        assert_eq!(closest("ordres", names), Some("orders"));
        assert_eq!(closest("customer", names), Some("customers"));
        assert_eq!(closest("zzz", names), None);
    }
}
