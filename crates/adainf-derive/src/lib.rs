//! `#[derive(Options)]`: the one definition of a script function's options. A struct's fields
//! are its options: the key is the field's name (serde's `rename` respected), the kind comes
//! from the field's type (`adainf_core::options::OptionKind`) or `#[option(kind = K)]`, the
//! documentation is the first paragraph of the field's doc comment (later paragraphs are for
//! developers), and the default is `#[option(default = expr)]` (the type's `Default` without
//! one), from which the derive writes the struct's `Default`. Parsing (serde), `adainf api`,
//! `adainf check` and the `.d.rhai` files all read what this derive generates.
//!
//! Field attributes: `default = expr`, `kind = K`, `skip` (not an option). A field with
//! serde's `flatten` splices in its own type's options (`PretrainConfig`'s `method`, which
//! serde also skips, is such a field: its type lists the method's options). Struct attribute:
//! `manual_default` (the struct writes its own `Default`, e.g. defaults that depend on another
//! option; then no field may carry a default). What would make serde read another key or
//! another default than the one listed is a compile error: serde's `rename_all`, a struct-level
//! `default = "path"`, a field-level `default`.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as Tokens;
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Attribute, Data, DeriveInput, Expr, Fields, Lit, LitStr, Token, parse_macro_input};

#[proc_macro_derive(Options, attributes(option))]
pub fn derive_options(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// What `#[option(..)]` and `#[serde(..)]` say about one field.
#[derive(Default)]
struct FieldAttrs {
    default: Option<Expr>,
    kind: Option<syn::Ident>,
    skip: bool,
    flatten: bool,
    rename: Option<String>,
}

fn expand(input: &DeriveInput) -> syn::Result<Tokens> {
    let name = &input.ident;
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new(
            input.span(),
            "#[derive(Options)] is for structs with named fields",
        ));
    };
    let Fields::Named(fields) = &data.fields else {
        return Err(syn::Error::new(
            input.span(),
            "#[derive(Options)] is for structs with named fields",
        ));
    };
    let manual_default = struct_attrs(&input.attrs)?;
    if manual_default
        && let Some(f) = fields
            .named
            .iter()
            .find(|f| field_attrs(&f.attrs).is_ok_and(|a| a.default.is_some()))
    {
        return Err(syn::Error::new(
            f.span(),
            "#[option(default)] does nothing under #[option(manual_default)]: give the default in the struct's Default",
        ));
    }
    let mut rows = Vec::new();
    let mut inits = Vec::new();
    for field in &fields.named {
        let ident = field.ident.as_ref().expect("named field");
        let ty = &field.ty;
        let attrs = field_attrs(&field.attrs)?;
        let value = match &attrs.default {
            Some(Expr::Lit(lit)) if matches!(lit.lit, Lit::Str(_)) => {
                quote_spanned!(lit.span()=> ::core::convert::From::from(#lit))
            }
            Some(e) => quote!(#e),
            None => quote!(::core::default::Default::default()),
        };
        inits.push(quote!(#ident: #value));
        if attrs.flatten {
            rows.push(quote! {
                rows.extend(<#ty as ::adainf_core::options::Options>::option_fields());
            });
            continue;
        }
        if attrs.skip {
            continue;
        }
        let key = attrs
            .rename
            .clone()
            .unwrap_or_else(|| ident.unraw().to_string());
        let doc = first_paragraph(&field.attrs);
        if doc.is_empty() {
            return Err(syn::Error::new(
                ident.span(),
                format!(
                    "option `{key}` needs a doc comment: its first paragraph is the option's documentation"
                ),
            ));
        }
        let (kind, choices) = match &attrs.kind {
            Some(k) => (quote!(::adainf_core::options::Kind::#k), quote!(&[])),
            None => (
                quote_spanned!(ty.span()=> <#ty as ::adainf_core::options::OptionKind>::KIND),
                quote_spanned!(ty.span()=> <#ty as ::adainf_core::options::OptionKind>::CHOICES),
            ),
        };
        rows.push(quote! {
            rows.push(::adainf_core::options::OptionField {
                key: #key,
                kind: #kind,
                doc: #doc,
                choices: #choices,
            });
        });
    }
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let default_impl = (!manual_default).then(|| {
        quote! {
            impl #impl_generics ::core::default::Default for #name #ty_generics #where_clause {
                fn default() -> Self {
                    #name { #(#inits),* }
                }
            }
        }
    });
    Ok(quote! {
        impl #impl_generics ::adainf_core::options::Options for #name #ty_generics #where_clause {
            fn option_fields() -> ::std::vec::Vec<::adainf_core::options::OptionField> {
                let mut rows = ::std::vec::Vec::new();
                #(#rows)*
                rows
            }
        }
        #default_impl
    })
}

/// `manual_default` from `#[option(..)]`; an error where serde would read keys this derive does
/// not list (`rename_all`) or where missing keys would not take their defaults (no
/// `#[serde(default)]`).
fn struct_attrs(attrs: &[Attribute]) -> syn::Result<bool> {
    let mut manual_default = false;
    let mut serde_default = false;
    for attr in attrs {
        if attr.path().is_ident("option") {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("manual_default") {
                    manual_default = true;
                    Ok(())
                } else {
                    Err(meta.error("unknown #[option] attribute of a struct (manual_default)"))
                }
            })?;
        } else if attr.path().is_ident("serde") {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("rename_all") {
                    return Err(meta
                        .error("#[derive(Options)] reads field names as written: no rename_all"));
                }
                if meta.path.is_ident("default") {
                    if !meta.input.peek(syn::Token![,]) && !meta.input.is_empty() {
                        return Err(meta.error(
                            "#[derive(Options)] takes the defaults from #[option(default)]: #[serde(default)] without a path",
                        ));
                    }
                    serde_default = true;
                }
                skip_value(&meta)
            })?;
        }
    }
    if !serde_default {
        return Err(syn::Error::new(
            proc_macro2::Span::call_site(),
            "#[derive(Options)] needs #[serde(default)]: a key the script leaves out takes its default",
        ));
    }
    Ok(manual_default)
}

fn field_attrs(attrs: &[Attribute]) -> syn::Result<FieldAttrs> {
    let mut out = FieldAttrs::default();
    for attr in attrs {
        if attr.path().is_ident("option") {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("default") {
                    out.default = Some(meta.value()?.parse()?);
                } else if meta.path.is_ident("kind") {
                    out.kind = Some(meta.value()?.parse()?);
                } else if meta.path.is_ident("skip") {
                    out.skip = true;
                } else {
                    return Err(
                        meta.error("unknown #[option] attribute of a field (default, kind, skip)")
                    );
                }
                Ok(())
            })?;
        } else if attr.path().is_ident("serde") {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("rename") {
                    let name: LitStr = meta.value()?.parse()?;
                    out.rename = Some(name.value());
                    return Ok(());
                }
                if meta.path.is_ident("skip") || meta.path.is_ident("skip_deserializing") {
                    out.skip = true;
                }
                if meta.path.is_ident("default") {
                    return Err(meta.error(
                        "#[derive(Options)] takes a field's default from #[option(default = ..)], not from serde",
                    ));
                }
                if meta.path.is_ident("flatten") {
                    out.flatten = true;
                }
                skip_value(&meta)
            })?;
        }
    }
    Ok(out)
}

/// Consumes the value of a serde attribute this derive does not read (`= ".."` or `(..)`).
fn skip_value(meta: &syn::meta::ParseNestedMeta) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        let _: Expr = meta.value()?.parse()?;
    } else if meta.input.peek(syn::token::Paren) {
        let content;
        syn::parenthesized!(content in meta.input);
        let _: Tokens = content.parse()?;
    }
    Ok(())
}

/// The first paragraph of the doc comment, its lines joined by spaces.
fn first_paragraph(attrs: &[Attribute]) -> String {
    let mut lines = Vec::new();
    for attr in attrs.iter().filter(|a| a.path().is_ident("doc")) {
        let syn::Meta::NameValue(nv) = &attr.meta else {
            continue;
        };
        let Expr::Lit(syn::ExprLit {
            lit: Lit::Str(s), ..
        }) = &nv.value
        else {
            continue;
        };
        let line = s.value().trim().to_string();
        if line.is_empty() {
            if lines.is_empty() {
                continue;
            }
            break;
        }
        lines.push(line);
    }
    lines.join(" ")
}
