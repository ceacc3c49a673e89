// Validates an OpenAPI document (file path argument) against the OpenAPI 3.x JSON schema.
// Exit 0 when valid; otherwise prints the errors and exits 1.
import { Validator } from "@seriousme/openapi-schema-validator";

const result = await new Validator().validate(process.argv[2]);
if (!result.valid) {
  console.log(JSON.stringify(result.errors, null, 1).slice(0, 4000));
}
process.exit(result.valid ? 0 : 1);
