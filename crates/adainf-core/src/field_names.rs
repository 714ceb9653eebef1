//! The field names a derived `Deserialize` reads, as serde hands them to the deserializer
//! (`deserialize_struct`'s `fields`): what option lists, `adainf api` and the config's own
//! key checks read instead of a second list of names.

use serde::de::{Error, Visitor, value::Error as DeError};

/// A deserializer that only records the fields of the struct asked of it.
pub struct Capture<'a>(&'a mut &'static [&'static str]);

impl<'de> serde::Deserializer<'de> for Capture<'_> {
    type Error = DeError;
    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, DeError> {
        Err(DeError::custom("not a struct"))
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, DeError> {
        *self.0 = fields;
        Err(DeError::custom("fields captured"))
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// The fields `deserialize` reads (empty when it does not read a struct): for a derived
/// deserializer that is not the type's `Deserialize` (`#[serde(remote = "Self")]`).
pub fn read_by<T>(
    deserialize: impl FnOnce(Capture<'_>) -> Result<T, DeError>,
) -> Vec<&'static str> {
    let mut fields: &'static [&'static str] = &[];
    let _ = deserialize(Capture(&mut fields));
    fields.to_vec()
}

/// The fields `T`'s `Deserialize` reads, in declaration order (serialized or not; a field
/// skipped in deserialization is not among them).
pub fn of<T: serde::de::DeserializeOwned>() -> Vec<&'static str> {
    read_by(|c| T::deserialize(c))
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Two {
        b: u8,
        #[serde(skip)]
        skipped: u8,
        a: u8,
    }

    #[test]
    fn the_fields_serde_reads_in_declaration_order() {
        assert_eq!(super::of::<Two>(), ["b", "a"]);
        assert!(super::of::<u8>().is_empty());
    }
}
