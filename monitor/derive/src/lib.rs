//! `#[derive(Qapi)]`: describes a serde-annotated Rust type in QAPI terms, so that one definition
//! gives the wire names (serde), the argument checks with QEMU's error texts, and the
//! `query-qmp-schema` introspection (both in `monitor::qapi`).
//!
//! Supported shapes, with names taken from serde's own attributes (`rename`, `rename_all`):
//! - a struct with named fields → a QAPI object; `Option<T>` fields are optional members;
//!   `#[serde(flatten)]` fields contribute their members first, as a QAPI base does;
//! - an enum of unit variants → a QAPI enum;
//! - an `#[serde(untagged)]` enum of one-field tuple variants → a QAPI alternate;
//! - an enum with `#[serde(tag = "..")]` and one-field tuple variants → a QAPI flat union: the tag
//!   member plus, per variant, the members of that variant's payload.
//!
//! Container attribute `#[qapi(name = "BlockJobInfo")]` sets the schema name (default: the Rust
//! name). Member attribute `#[qapi(feature = "deprecated")]` attaches a feature flag.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::quote;
use syn::{Attribute, Data, DeriveInput, Fields, LitStr, Type, parse_macro_input};

#[proc_macro_derive(Qapi, attributes(qapi))]
pub fn derive_qapi(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// What the serde and qapi attributes of one item say.
#[derive(Default)]
struct Attrs {
    rename: Option<String>,
    rename_all: Option<String>,
    flatten: bool,
    untagged: bool,
    tag: Option<String>,
    qapi_name: Option<String>,
    features: Vec<String>,
}

fn parse_attrs(attrs: &[Attribute]) -> syn::Result<Attrs> {
    let mut out = Attrs::default();
    for attr in attrs {
        if attr.path().is_ident("serde") {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("rename") {
                    if let Ok(v) = meta.value() {
                        out.rename = Some(v.parse::<LitStr>()?.value());
                    } else {
                        // rename(serialize = .., deserialize = ..): take deserialize
                        meta.parse_nested_meta(|m| {
                            let v: LitStr = m.value()?.parse()?;
                            if m.path.is_ident("deserialize") {
                                out.rename = Some(v.value());
                            }
                            Ok(())
                        })?;
                    }
                } else if meta.path.is_ident("rename_all") {
                    out.rename_all = Some(meta.value()?.parse::<LitStr>()?.value());
                } else if meta.path.is_ident("flatten") {
                    out.flatten = true;
                } else if meta.path.is_ident("untagged") {
                    out.untagged = true;
                } else if meta.path.is_ident("tag") {
                    out.tag = Some(meta.value()?.parse::<LitStr>()?.value());
                } else if let Ok(v) = meta.value() {
                    // skip values of attributes we don't interpret (default = "..", with = ..)
                    let _: syn::Expr = v.parse()?;
                }
                Ok(())
            })?;
        } else if attr.path().is_ident("qapi") {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("name") {
                    out.qapi_name = Some(meta.value()?.parse::<LitStr>()?.value());
                    Ok(())
                } else if meta.path.is_ident("feature") {
                    out.features.push(meta.value()?.parse::<LitStr>()?.value());
                    Ok(())
                } else {
                    Err(meta.error("unknown qapi attribute"))
                }
            })?;
        }
    }
    Ok(out)
}

/// Applies a serde `rename_all` rule to a Rust identifier.
fn apply_rule(ident: &str, rule: Option<&str>, is_variant: bool) -> syn::Result<String> {
    let words = split_words(ident, is_variant);
    Ok(match rule {
        None => ident.to_string(),
        Some("kebab-case") => words.join("-"),
        Some("snake_case") => words.join("_"),
        Some("lowercase") => ident.to_lowercase(),
        Some("UPPERCASE") => ident.to_uppercase(),
        Some("SCREAMING_SNAKE_CASE") => words.join("_").to_uppercase(),
        Some("SCREAMING-KEBAB-CASE") => words.join("-").to_uppercase(),
        Some(other) => {
            return Err(syn::Error::new(
                proc_macro2::Span::call_site(),
                format!("qapi derive: unsupported rename_all rule {other}"),
            ));
        }
    })
}

/// Splits `HostQmpQuit` (variants) or `host_qmp_quit` (fields) into lower-case words.
fn split_words(ident: &str, is_variant: bool) -> Vec<String> {
    if !is_variant {
        return ident.split('_').map(str::to_lowercase).collect();
    }
    let mut words = Vec::new();
    let mut cur = String::new();
    for c in ident.chars() {
        if c.is_uppercase() && !cur.is_empty() {
            words.push(std::mem::take(&mut cur));
        }
        if c == '_' {
            if !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
            continue;
        }
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// `Option<T>` → `Some(T)`.
fn option_inner(ty: &Type) -> Option<&Type> {
    let Type::Path(tp) = ty else { return None };
    let seg = tp.path.segments.last()?;
    if seg.ident != "Option" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &seg.arguments else { return None };
    match args.args.first()? {
        syn::GenericArgument::Type(t) => Some(t),
        _ => None,
    }
}

fn expand(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let ident = &input.ident;
    let cattrs = parse_attrs(&input.attrs)?;
    let name = cattrs.qapi_name.clone().unwrap_or_else(|| ident.to_string());
    let body = match &input.data {
        Data::Struct(s) => expand_struct(&name, &cattrs, &s.fields)?,
        Data::Enum(e) => expand_enum(&name, &cattrs, e)?,
        Data::Union(u) => {
            return Err(syn::Error::new_spanned(u.union_token, "qapi derive: unions are not supported"));
        }
    };
    let (impl_g, ty_g, where_g) = input.generics.split_for_impl();
    Ok(quote! {
        impl #impl_g ::monitor::qapi::Qapi for #ident #ty_g #where_g {
            fn qapi_type() -> ::monitor::qapi::QType {
                #body
            }
        }
    })
}

fn expand_struct(name: &str, cattrs: &Attrs, fields: &Fields) -> syn::Result<TokenStream2> {
    let Fields::Named(named) = fields else {
        return Err(syn::Error::new_spanned(fields, "qapi derive: only structs with named fields"));
    };
    let mut bases = Vec::new();
    let mut members = Vec::new();
    for f in &named.named {
        let fattrs = parse_attrs(&f.attrs)?;
        let ty = &f.ty;
        if fattrs.flatten {
            bases.push(quote! { <#ty as ::monitor::qapi::Qapi>::qapi_type });
            continue;
        }
        let Some(fident) = &f.ident else { continue };
        let rust_name = fident.to_string();
        let rust_name = rust_name.trim_start_matches("r#");
        let wire = match fattrs.rename {
            Some(r) => r,
            None => apply_rule(rust_name, cattrs.rename_all.as_deref(), false)?,
        };
        let (optional, inner) = match option_inner(ty) {
            Some(inner) => (true, inner),
            None => (false, ty),
        };
        let features = &fattrs.features;
        members.push(quote! {
            ::monitor::qapi::Member {
                name: #wire,
                ty: <#inner as ::monitor::qapi::Qapi>::qapi_type,
                optional: #optional,
                features: &[#(#features),*],
            }
        });
    }
    Ok(quote! {
        static DEF: ::monitor::qapi::ObjectDef = ::monitor::qapi::ObjectDef {
            name: #name,
            bases: &[#(#bases),*],
            members: &[#(#members),*],
            union: None,
        };
        ::monitor::qapi::QType::Object(&DEF)
    })
}

fn expand_enum(name: &str, cattrs: &Attrs, e: &syn::DataEnum) -> syn::Result<TokenStream2> {
    let all_unit = e.variants.iter().all(|v| matches!(v.fields, Fields::Unit));
    let mut wire_names = Vec::new();
    for v in &e.variants {
        let vattrs = parse_attrs(&v.attrs)?;
        wire_names.push(match vattrs.rename {
            Some(r) => r,
            None => apply_rule(&v.ident.to_string(), cattrs.rename_all.as_deref(), true)?,
        });
    }
    let payloads = || -> syn::Result<Vec<&Type>> {
        e.variants
            .iter()
            .map(|v| match &v.fields {
                Fields::Unnamed(u) if u.unnamed.len() == 1 => Ok(&u.unnamed[0].ty),
                _ => Err(syn::Error::new_spanned(
                    v,
                    "qapi derive: alternate/union variants must have exactly one unnamed field",
                )),
            })
            .collect()
    };
    if cattrs.untagged {
        let tys = payloads()?;
        return Ok(quote! {
            static DEF: ::monitor::qapi::AlternateDef = ::monitor::qapi::AlternateDef {
                name: #name,
                choices: &[#(<#tys as ::monitor::qapi::Qapi>::qapi_type),*],
            };
            ::monitor::qapi::QType::Alternate(&DEF)
        });
    }
    if let Some(tag) = &cattrs.tag {
        let tys = payloads()?;
        let tag_enum = format!("{name}Kind");
        return Ok(quote! {
            static TAG: ::monitor::qapi::EnumDef = ::monitor::qapi::EnumDef {
                name: #tag_enum,
                values: &[#(#wire_names),*],
            };
            fn tag_type() -> ::monitor::qapi::QType {
                ::monitor::qapi::QType::Enum(&TAG)
            }
            static DEF: ::monitor::qapi::ObjectDef = ::monitor::qapi::ObjectDef {
                name: #name,
                bases: &[],
                members: &[::monitor::qapi::Member {
                    name: #tag,
                    ty: tag_type,
                    optional: false,
                    features: &[],
                }],
                union: Some(::monitor::qapi::UnionDef {
                    tag: #tag,
                    variants: &[#((#wire_names, <#tys as ::monitor::qapi::Qapi>::qapi_type)),*],
                }),
            };
            ::monitor::qapi::QType::Object(&DEF)
        });
    }
    if !all_unit {
        return Err(syn::Error::new_spanned(
            &e.variants,
            "qapi derive: enums must be unit-only, #[serde(untagged)] or #[serde(tag = ..)]",
        ));
    }
    Ok(quote! {
        static DEF: ::monitor::qapi::EnumDef = ::monitor::qapi::EnumDef {
            name: #name,
            values: &[#(#wire_names),*],
        };
        ::monitor::qapi::QType::Enum(&DEF)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_rules() {
        assert_eq!(apply_rule("HostQmpQuit", Some("kebab-case"), true).unwrap(), "host-qmp-quit");
        assert_eq!(apply_rule("job_id", Some("kebab-case"), false).unwrap(), "job-id");
        assert_eq!(apply_rule("InternalError", Some("kebab-case"), true).unwrap(), "internal-error");
        assert_eq!(apply_rule("Io", Some("snake_case"), true).unwrap(), "io");
        assert_eq!(apply_rule("job_id", None, false).unwrap(), "job_id");
        assert_eq!(apply_rule("Stop", Some("SCREAMING_SNAKE_CASE"), true).unwrap(), "STOP");
    }
}
